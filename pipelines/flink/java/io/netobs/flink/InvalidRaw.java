package io.netobs.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * From rows (raw, rid): the raw message of each row without a result id (it failed the validity check),
 * for the dead-letter topic. In the JVM, so that the dead-letter path shares the archive's Kafka source
 * and its one parse per message.
 */
public final class InvalidRaw implements FlatMapFunction<Row, String> {
    private static final long serialVersionUID = 1L;

    @Override
    public void flatMap(Row row, Collector<String> out) {
        if (row.getField("rid") == null) {
            Object raw = row.getField("raw");
            out.collect(raw == null ? "" : raw.toString());
        }
    }
}
