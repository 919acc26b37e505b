package io.netobs.flink;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * Row(field 0 of the row, row), in the JVM: the shape PyFlink's keyed Python operators take as input
 * (what its own key_by makes with a Python function, i.e. one more JVM-Python round trip per row).
 * The detectors' batches are keyed by their shard, field 0.
 */
public final class FirstFieldKey implements MapFunction<Row, Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public Row map(Row row) {
        Row out = new Row(2);
        out.setField(0, row.getField(0));
        out.setField(1, row);
        return out;
    }
}
