package io.netobs.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * From the parsed messages ({@link ResultParser}): (result_id hash, raw bytes) of each result record, what
 * the archive deduplicates and writes. Also its key selector: one of {@link #BUCKETS} buckets of the hash.
 */
public final class ArchiveKey
        implements FlatMapFunction<Row, Tuple2<Long, byte[]>>,
                KeySelector<Tuple2<Long, byte[]>, Integer> {
    private static final long serialVersionUID = 1L;
    /** Keys of the archive's dedup state: many more than subtasks, so that the keys spread evenly. */
    public static final int BUCKETS = 1024;

    @Override
    public void flatMap(Row row, Collector<Tuple2<Long, byte[]>> out) {
        Object id = row.getField(1);
        if (id != null) {
            out.collect(Tuple2.of((Long) id, (byte[]) row.getField(0)));
        }
    }

    @Override
    public Integer getKey(Tuple2<Long, byte[]> value) {
        return (int) (value.f0 >>> 54); // the top 10 bits; ArchiveOnce's tables index by the low bits
    }
}
