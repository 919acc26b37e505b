package io.netobs.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/** From the parsed messages ({@link ResultParser}): the flat fields row of each result record. */
public final class RecordFields implements FlatMapFunction<Row, Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public void flatMap(Row row, Collector<Row> out) {
        Object fields = row.getField(2);
        if (fields != null) {
            out.collect((Row) fields);
        }
    }
}
