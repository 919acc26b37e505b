package io.netobs.flink;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * Row(series key, window row), in the JVM: the shape PyFlink's keyed Python operators take as input
 * (what its own key_by makes with a Python function, i.e. one more JVM-Python round trip per row).
 * The key is "agent_id|check_name|target", the series the detectors keep state for.
 */
public final class SeriesKey implements MapFunction<Row, Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public Row map(Row row) {
        String key = row.getField("agent_id") + "|" + row.getField("check_name") + "|" + row.getField("target");
        Row out = new Row(2);
        out.setField(0, key);
        out.setField(1, row);
        return out;
    }
}
