package io.netobs.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The dead letters: from the parsed messages ({@link ResultParser}), the bytes of those that are no result
 * record; and, as the Kafka sink's value schema, those bytes as they are.
 */
public final class InvalidRaw implements FlatMapFunction<Row, byte[]>, SerializationSchema<byte[]> {
    private static final long serialVersionUID = 1L;

    @Override
    public void flatMap(Row row, Collector<byte[]> out) {
        if (row.getField(1) == null) {
            out.collect((byte[]) row.getField(0));
        }
    }

    @Override
    public byte[] serialize(byte[] message) {
        return message;
    }
}
