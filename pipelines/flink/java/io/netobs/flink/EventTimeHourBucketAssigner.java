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
    private static final long HOUR_MS = 3_600_000L;
    // Consecutive lines mostly fall in the same hour: remember the last one's id.
    private transient long lastHour = Long.MIN_VALUE;
    private transient String lastId;

    @Override
    public String getBucketId(String line, Context context) {
        long hour = Math.floorDiv(startedAtMs(line), HOUR_MS);
        if (hour != lastHour || lastId == null) {
            ZonedDateTime t = Instant.ofEpochMilli(hour * HOUR_MS).atZone(ZoneOffset.UTC);
            lastId = String.format(
                    "date=%04d-%02d-%02d/hour=%02d", t.getYear(), t.getMonthValue(), t.getDayOfMonth(), t.getHour());
            lastHour = hour;
        }
        return lastId;
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
