package io.netobs.flink;

import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.types.Row;

/**
 * Watermarks of the parsed messages ({@link ResultParser}): the largest event time seen, less the allowed
 * lateness. Only result records count: a dead letter carries its Kafka timestamp (kept on the dead-letter
 * topic), which must not move the detectors' event time (a late canary would make every result late).
 */
public final class RecordWatermarks implements WatermarkGeneratorSupplier<Row> {
    private static final long serialVersionUID = 1L;
    private long latenessMs;

    /** Sets the allowed lateness; returns this. */
    public RecordWatermarks withLatenessMs(long ms) {
        if (ms < 0) {
            throw new IllegalArgumentException("the allowed lateness must be >= 0 ms, got " + ms);
        }
        latenessMs = ms;
        return this;
    }

    @Override
    public WatermarkGenerator<Row> createWatermarkGenerator(Context context) {
        final long lateness = latenessMs;
        return new WatermarkGenerator<Row>() {
            private long largest = Long.MIN_VALUE + lateness + 1;

            @Override
            public void onEvent(Row row, long timestamp, WatermarkOutput output) {
                if (row.getField(1) != null) {
                    largest = Math.max(largest, timestamp);
                }
            }

            @Override
            public void onPeriodicEmit(WatermarkOutput output) {
                output.emitWatermark(new Watermark(largest - lateness - 1));
            }
        };
    }
}
