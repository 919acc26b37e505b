package io.netobs.flink;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code netobs_shard(key, shards)}: which of {@code shards} batches a series' window row joins, in the
 * JVM. The Python detectors then get one row per (shard, window) holding many series, instead of one
 * Python call per series and window.
 */
public final class Shard extends ScalarFunction {
    private static final long serialVersionUID = 1L;

    public Integer eval(String key, Integer shards) {
        if (key == null || shards == null || shards < 1) {
            return 0;
        }
        return Math.floorMod(key.hashCode(), shards);
    }
}
