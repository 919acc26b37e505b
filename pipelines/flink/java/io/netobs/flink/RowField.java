package io.netobs.flink;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/** The first field of a Row as a String, in the JVM: keeps the archive path free of Python. */
public final class RowField implements MapFunction<Row, String> {
    private static final long serialVersionUID = 1L;

    @Override
    public String map(Row row) {
        Object value = row.getField(0);
        return value == null ? "" : value.toString();
    }
}
