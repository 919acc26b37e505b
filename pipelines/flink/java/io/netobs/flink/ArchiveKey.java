package io.netobs.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * From the parsed messages ({@link ResultParser}): (result_id hash, raw bytes) of each result record, what
 * the archive deduplicates and writes. Also its key selector: one of 2^{@link #BUCKET_BITS} buckets of the hash.
 */
public final class ArchiveKey
        implements FlatMapFunction<Row, Tuple2<Long, byte[]>>,
                KeySelector<Tuple2<Long, byte[]>, Integer> {
    private static final long serialVersionUID = 1L;
    /**
     * Keys of the archive's dedup state, 2^14: many more than subtasks, so that they spread evenly, and
     * small per key (at 20,000 results/s, ~180 ids per key and generation), so that a state backend that
     * reads a key's tables per record (RocksDB) reads a few KB, not the whole subtask's share.
     */
    static final int BUCKET_BITS = 14;

    @Override
    public void flatMap(Row row, Collector<Tuple2<Long, byte[]>> out) {
        Object id = row.getField(1);
        if (id != null) {
            out.collect(Tuple2.of((Long) id, (byte[]) row.getField(0)));
        }
    }

    @Override
    public Integer getKey(Tuple2<Long, byte[]> value) {
        return (int) (value.f0 >>> (64 - BUCKET_BITS)); // the top bits; ArchiveOnce's tables use the low ones
    }
}
