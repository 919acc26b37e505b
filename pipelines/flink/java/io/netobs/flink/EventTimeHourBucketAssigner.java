package io.netobs.flink;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.streaming.api.functions.sink.filesystem.BucketAssigner;
import org.apache.flink.streaming.api.functions.sink.filesystem.bucketassigners.SimpleVersionedStringSerializer;

/**
 * Puts a result-record JSON line into the lake partition of its event time:
 * {@code date=YYYY-MM-DD/hour=HH} (UTC) of its {@code started_at_ms}. Flink's own date-time assigner
 * uses processing time, which would file late or replayed results under the wrong hour.
 * Lines reach the archive only after validation, so started_at_ms is present; a line without it
 * goes to {@code date=1970-01-01/hour=00} rather than failing the job.
 */
public final class EventTimeHourBucketAssigner implements BucketAssigner<String, String> {
    private static final long serialVersionUID = 1L;
    private static final String KEY = "\"started_at_ms\"";

    @Override
    public String getBucketId(String line, Context context) {
        ZonedDateTime t = Instant.ofEpochMilli(startedAtMs(line)).atZone(ZoneOffset.UTC);
        return String.format("date=%04d-%02d-%02d/hour=%02d", t.getYear(), t.getMonthValue(), t.getDayOfMonth(), t.getHour());
    }

    /** The integer after "started_at_ms": in a compact or spaced JSON line; 0 when absent. */
    static long startedAtMs(String line) {
        int at = line.indexOf(KEY);
        if (at < 0) {
            return 0L;
        }
        int i = at + KEY.length();
        while (i < line.length() && (line.charAt(i) == ' ' || line.charAt(i) == ':')) {
            i++;
        }
        long value = 0L;
        boolean digits = false;
        while (i < line.length() && Character.isDigit(line.charAt(i))) {
            value = value * 10 + (line.charAt(i) - '0');
            digits = true;
            i++;
        }
        return digits ? value : 0L;
    }

    @Override
    public SimpleVersionedSerializer<String> getSerializer() {
        return SimpleVersionedStringSerializer.INSTANCE;
    }
}
