package io.netobs.flink;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The detectors' input, in the JVM: the results of each series (agent, pop, check, type, target) summed up
 * per tumbling event-time window, and the summaries of a shard's series sent as one batch
 * {@code Row(shard, lines)} when the watermark passes the window's end. Keyed by shard (also its key
 * selector: {@code hash(agent|check|target) mod shards}), so the Python detectors are called once per
 * (shard, window) with many series.
 *
 * <p>A line holds the fields named by {@code lineFieldNames} (netobs_flink/series.py LINE_FIELDS) joined by
 * 0x1F, text with 0x1E/0x1F replaced by a space, NULL as the empty string; the lines are joined by 0x1E.
 * Per window: count, failures, the last outcome, the first and last start, mean total and phase latencies
 * of the successful results, mean loss, the last (non-null) path hash, path RTT, certificate subject,
 * error type and trace id, the last failed result's trace id and the lowest certificate expiry. A result
 * whose window has already been sent (later than the watermark) is dropped, as a SQL window would.
 *
 * <p>State: one map entry per open (window, series), so any state backend keeps it by the entry.
 */
public final class ShardWindows extends KeyedProcessFunction<Integer, Row, Row>
        implements KeySelector<Row, Integer> {
    private static final long serialVersionUID = 1L;
    static final char FIELD_SEP = '\u001f';
    static final char LINE_SEP = '\u001e';
    private static final Logger LOG = LoggerFactory.getLogger(ShardWindows.class);

    private int shards = 64;
    private long windowMs = 1000L;
    // The line's fields, resolved once (configure), not by name per field and line: a column, and for
    // PHASE which phase (an index into phases).
    private Column[] columns = new Column[0];
    private int[] columnPhase = new int[0];
    // Positions in the input row (ResultParser's fields).
    private int agent;
    private int pop;
    private int check;
    private int type;
    private int target;
    private int startedAt;
    private int success;
    private int duration;
    private String[] phaseNames = new String[0];
    private int[] phases = new int[0];
    private int loss;
    private int pathHash;
    private int pathRtt;
    private int certDays;
    private int certSubject;
    private int errorType;
    private int traceId;

    private transient MapState<String, Acc> open; // window end + series -> its summary so far
    private transient long dropped;

    /** What a line field shows; the names are LINE_FIELDS' (PHASE: {@code <phase>_ms}). */
    private enum Column {
        AGENT_ID, POP, CHECK_NAME, CHECK_TYPE, TARGET, FIRST_MS, LAST_MS, N, FAILURES, LAST_SUCCESS, TOTAL_MS,
        LOSS_RATIO, PATH_HASH, PATH_RTT_MS, CERT_EXPIRY_DAYS, CERT_SUBJECT, ERROR_TYPE, TRACE_ID, FAILED_TRACE_ID,
        PHASE
    }

    /** One series' results in one window so far (a POJO: Flink serializes it field by field). */
    public static final class Acc {
        public long windowEnd;
        public String agentId;
        public String pop;
        public String checkName;
        public String checkType;
        public String target;
        public long firstMs = Long.MAX_VALUE;
        public long lastMs = Long.MIN_VALUE;
        public long n;
        public long failures;
        public boolean lastSuccess;
        public double totalSum;
        public long totalCount;
        public double[] phaseSum;
        public long[] phaseCount;
        public double lossSum;
        public long lossCount;
        public String pathHash;
        public Double pathRttMs;
        public Double certExpiryDays;
        public String certSubject;
        public String errorType;
        public String traceId;
        public String failedTraceId;

        public Acc() {}
    }

    /**
     * Sets the layout; returns this. {@code inputFields}: the input row's field names, in order (with
     * {@code phase_<name>_ms} for each of {@code phaseList}); {@code lineFieldNames}: the line's fields.
     */
    public ShardWindows configure(
            String inputFields, String phaseList, String lineFieldNames, int shardCount, long windowMillis) {
        if (shardCount < 1 || windowMillis < 1) {
            throw new IllegalArgumentException("shards and the window must be >= 1, got " + shardCount + ", "
                    + windowMillis + " ms");
        }
        List<String> in = Arrays.asList(inputFields.split(","));
        agent = at(in, "agent_id");
        pop = at(in, "pop");
        check = at(in, "check_name");
        type = at(in, "check_type");
        target = at(in, "target");
        startedAt = at(in, "started_at_ms");
        success = at(in, "success");
        duration = at(in, "duration_ms");
        phaseNames = phaseList.split(",");
        phases = new int[phaseNames.length];
        for (int i = 0; i < phaseNames.length; i++) {
            phases[i] = at(in, "phase_" + phaseNames[i] + "_ms");
        }
        loss = at(in, "loss_ratio");
        pathHash = at(in, "path_hash");
        pathRtt = at(in, "path_rtt_ms");
        certDays = at(in, "cert_expiry_days");
        certSubject = at(in, "cert_subject");
        errorType = at(in, "error_type");
        traceId = at(in, "trace_id");
        String[] lineFields = lineFieldNames.split(",");
        columns = new Column[lineFields.length];
        columnPhase = new int[lineFields.length];
        List<String> phaseColumns = new ArrayList<>();
        for (String phase : phaseNames) {
            phaseColumns.add(phase + "_ms");
        }
        for (int i = 0; i < lineFields.length; i++) { // unknown names fail here, at job build time
            columnPhase[i] = phaseColumns.indexOf(lineFields[i]);
            columns[i] = columnPhase[i] >= 0 ? Column.PHASE : column(lineFields[i]);
        }
        shards = shardCount;
        windowMs = windowMillis;
        return this;
    }

    private static int at(List<String> fields, String name) {
        int i = fields.indexOf(name);
        if (i < 0) {
            throw new IllegalArgumentException("the input row has no field " + name + ": " + fields);
        }
        return i;
    }

    /** The type of the batches: Row(shard INT, lines STRING). */
    public static TypeInformation<Row> batchType() {
        return Types.ROW_NAMED(new String[] {"shard", "lines"}, Types.INT, Types.STRING);
    }

    @Override
    public Integer getKey(Row row) {
        String key = row.getField(agent) + "|" + row.getField(check) + "|" + row.getField(target);
        return Math.floorMod(key.hashCode(), shards);
    }

    @Override
    public void open(OpenContext context) {
        open = getRuntimeContext().getMapState(
                new MapStateDescriptor<>("open-windows", Types.STRING, TypeInformation.of(Acc.class)));
    }

    @Override
    public void processElement(Row row, Context ctx, Collector<Row> out) throws Exception {
        Long at = ctx.timestamp();
        long ts = at == null ? (Long) row.getField(startedAt) : at;
        long end = ts - Math.floorMod(ts, windowMs) + windowMs;
        if (end - 1 <= ctx.timerService().currentWatermark()) {
            dropped++;
            if (dropped <= 10 || dropped % 10_000 == 0) {
                LOG.warn(
                        "dropped a result later than its window ({} so far): started {} ms, watermark {} ms",
                        dropped, ts, ctx.timerService().currentWatermark());
            }
            return;
        }
        String key = end + "|" + seriesKey(row);
        Acc acc = open.get(key);
        if (acc == null) {
            acc = newAcc(row, end);
            ctx.timerService().registerEventTimeTimer(end - 1);
        }
        add(acc, row);
        open.put(key, acc);
    }

    private String seriesKey(Row row) {
        return row.getField(agent) + "|" + row.getField(pop) + "|" + row.getField(check) + "|"
                + row.getField(type) + "|" + row.getField(target);
    }

    private Acc newAcc(Row row, long end) {
        Acc acc = new Acc();
        acc.windowEnd = end;
        acc.agentId = (String) row.getField(agent);
        acc.pop = (String) row.getField(pop);
        acc.checkName = (String) row.getField(check);
        acc.checkType = (String) row.getField(type);
        acc.target = (String) row.getField(target);
        acc.phaseSum = new double[phases.length];
        acc.phaseCount = new long[phases.length];
        return acc;
    }

    private void add(Acc acc, Row row) {
        long started = (Long) row.getField(startedAt);
        boolean ok = (Boolean) row.getField(success);
        acc.firstMs = Math.min(acc.firstMs, started);
        acc.lastMs = Math.max(acc.lastMs, started);
        acc.n++;
        acc.failures += ok ? 0 : 1;
        acc.lastSuccess = ok;
        if (ok) {
            Double total = (Double) row.getField(duration);
            if (total != null) {
                acc.totalSum += total;
                acc.totalCount++;
            }
            for (int i = 0; i < phases.length; i++) {
                Double phase = (Double) row.getField(phases[i]);
                if (phase != null) {
                    acc.phaseSum[i] += phase;
                    acc.phaseCount[i]++;
                }
            }
        }
        Double lossRatio = (Double) row.getField(loss);
        if (lossRatio != null) {
            acc.lossSum += lossRatio;
            acc.lossCount++;
        }
        acc.pathHash = last(acc.pathHash, (String) row.getField(pathHash));
        acc.pathRttMs = last(acc.pathRttMs, (Double) row.getField(pathRtt));
        Double days = (Double) row.getField(certDays);
        if (days != null && (acc.certExpiryDays == null || days < acc.certExpiryDays)) {
            acc.certExpiryDays = days;
        }
        acc.certSubject = last(acc.certSubject, (String) row.getField(certSubject));
        acc.errorType = last(acc.errorType, (String) row.getField(errorType));
        String trace = (String) row.getField(traceId);
        acc.traceId = last(acc.traceId, trace);
        if (!ok) {
            acc.failedTraceId = last(acc.failedTraceId, trace);
        }
    }

    private static <T> T last(T previous, T value) {
        return value == null ? previous : value;
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<Row> out) throws Exception {
        long end = timestamp + 1;
        StringBuilder lines = new StringBuilder();
        List<String> done = new ArrayList<>();
        for (Map.Entry<String, Acc> entry : open.entries()) {
            Acc acc = entry.getValue();
            if (acc.windowEnd > end) {
                continue;
            }
            if (lines.length() > 0) {
                lines.append(LINE_SEP);
            }
            line(acc, lines);
            done.add(entry.getKey());
        }
        for (String key : done) {
            open.remove(key);
        }
        if (!done.isEmpty()) {
            out.collect(Row.of(ctx.getCurrentKey(), lines.toString()));
        }
    }

    /** One summary as a line: the line's fields joined by FIELD_SEP. */
    void line(Acc acc, StringBuilder out) {
        for (int i = 0; i < columns.length; i++) {
            if (i > 0) {
                out.append(FIELD_SEP);
            }
            Object value = field(acc, i);
            if (value instanceof String) {
                String text = (String) value;
                for (int c = 0; c < text.length(); c++) {
                    char ch = text.charAt(c);
                    out.append(ch == FIELD_SEP || ch == LINE_SEP ? ' ' : ch);
                }
            } else if (value != null) {
                out.append(value);
            }
        }
    }

    private static Column column(String name) {
        for (Column c : Column.values()) {
            if (c != Column.PHASE && c.name().equalsIgnoreCase(name)) {
                return c;
            }
        }
        throw new IllegalArgumentException("unknown window line field " + name);
    }

    /** The value of the line's field {@code i}. */
    private Object field(Acc acc, int i) {
        switch (columns[i]) {
            case AGENT_ID:
                return acc.agentId;
            case POP:
                return acc.pop;
            case CHECK_NAME:
                return acc.checkName;
            case CHECK_TYPE:
                return acc.checkType;
            case TARGET:
                return acc.target;
            case FIRST_MS:
                return acc.firstMs;
            case LAST_MS:
                return acc.lastMs;
            case N:
                return acc.n;
            case FAILURES:
                return acc.failures;
            case LAST_SUCCESS:
                return acc.lastSuccess;
            case TOTAL_MS:
                return mean(acc.totalSum, acc.totalCount);
            case LOSS_RATIO:
                return mean(acc.lossSum, acc.lossCount);
            case PATH_HASH:
                return acc.pathHash;
            case PATH_RTT_MS:
                return acc.pathRttMs;
            case CERT_EXPIRY_DAYS:
                return acc.certExpiryDays;
            case CERT_SUBJECT:
                return acc.certSubject;
            case ERROR_TYPE:
                return acc.errorType;
            case TRACE_ID:
                return acc.traceId;
            case FAILED_TRACE_ID:
                return acc.failedTraceId;
            default: // PHASE
                return mean(acc.phaseSum[columnPhase[i]], acc.phaseCount[columnPhase[i]]);
        }
    }

    private static Double mean(double sum, long count) {
        return count == 0 ? null : sum / count;
    }

    /** A test hook: the lines of summaries built from the given rows (as one window would). */
    public String linesOf(List<Row> rows) {
        StringBuilder out = new StringBuilder();
        Map<String, Acc> accs = new LinkedHashMap<>();
        for (Row row : rows) {
            add(accs.computeIfAbsent(seriesKey(row), k -> newAcc(row, 0L)), row);
        }
        for (Acc acc : accs.values()) {
            if (out.length() > 0) {
                out.append(LINE_SEP);
            }
            line(acc, out);
        }
        return out.toString();
    }
}
