package io.netobs.flink;

import java.io.IOException;
import java.io.OutputStream;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import org.apache.flink.api.common.serialization.Encoder;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.streaming.api.functions.sink.filesystem.BucketAssigner;
import org.apache.flink.streaming.api.functions.sink.filesystem.bucketassigners.SimpleVersionedStringSerializer;

/**
 * The archive's file layout: each record (its bytes as they came from Kafka) one line, in the lake partition
 * of its event time, {@code date=YYYY-MM-DD/hour=HH} (UTC) of its started_at_ms: the element's timestamp,
 * which the job's source sets from it. Flink's own date-time assigner uses processing time, which would
 * file late or replayed results under the wrong hour.
 */
public final class EventTimeHourBucketAssigner implements BucketAssigner<byte[], String>, Encoder<byte[]> {
    private static final long serialVersionUID = 1L;
    private static final long HOUR_MS = 3_600_000L;
    // Consecutive lines mostly fall in the same hour: remember the last one's id.
    private transient long lastHour = Long.MIN_VALUE;
    private transient String lastId;

    @Override
    public String getBucketId(byte[] line, Context context) {
        Long at = context.timestamp();
        long hour = Math.floorDiv(at == null ? 0L : at, HOUR_MS);
        if (hour != lastHour || lastId == null) {
            ZonedDateTime t = Instant.ofEpochMilli(hour * HOUR_MS).atZone(ZoneOffset.UTC);
            lastId = String.format(
                    "date=%04d-%02d-%02d/hour=%02d", t.getYear(), t.getMonthValue(), t.getDayOfMonth(), t.getHour());
            lastHour = hour;
        }
        return lastId;
    }

    @Override
    public SimpleVersionedSerializer<String> getSerializer() {
        return SimpleVersionedStringSerializer.INSTANCE;
    }

    @Override
    public void encode(byte[] line, OutputStream stream) throws IOException {
        stream.write(line);
        stream.write('\n');
    }
}
