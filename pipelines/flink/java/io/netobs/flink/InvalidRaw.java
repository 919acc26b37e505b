package io.netobs.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/** From the parsed messages ({@link ResultParser}): the raw text of those that are no result record. */
public final class InvalidRaw implements FlatMapFunction<Row, String> {
    private static final long serialVersionUID = 1L;

    @Override
    public void flatMap(Row row, Collector<String> out) {
        if (row.getField(1) == null) {
            out.collect((String) row.getField(0));
        }
    }
}
