package io.netobs.flink;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.types.Row;

/**
 * The job's one read of a result-record message: {@code Row(raw, id, fields)}, in one streaming JSON
 * parse, no tree built.
 *
 * <ul>
 *   <li>{@code raw}: the message's bytes (what the archive and the dead-letter topic write, as they came);
 *   <li>{@code id}: a 64-bit hash of the result_id, or NULL when the message is not a processable
 *       result record (it then goes to the dead-letter topic);
 *   <li>{@code fields}: the flat row the detectors' SQL reads, NULL when id is.
 * </ul>
 *
 * <p>What to read comes from netobs_flink/record.py (the one definition), through {@link #configure}:
 * {@code fields} as {@code name=path|path:TYPE,...} (a dotted path, {@code [-1]} takes an array's last
 * element, {@code a|b} the first path with a value) and {@code required} as {@code name:TYPE,...}
 * (top-level fields that must be there with that JSON type). TYPE is STRING, BIGINT, DOUBLE or
 * BOOLEAN; a value of another JSON type reads as NULL.
 *
 * <p>It is also the source's timestamp assigner: event time is the record's started_at_ms (a message
 * that is no record keeps its Kafka timestamp, which the dead-letter topic then keeps too).
 */
public final class ResultParser implements DeserializationSchema<Row>, SerializableTimestampAssigner<Row> {
    private static final long serialVersionUID = 1L;

    private String[] names = new String[0];
    private String[] types = new String[0];
    private String[][] paths = new String[0][];
    private int[] required = new int[0];
    private int outputs;
    private int resultId = -1;
    private int startedAt = -1;

    private transient JsonFactory factory;
    private transient Node root;

    /** A JSON object level of the paths: its fields, and the slots (field, alternative) they fill. */
    private static final class Node {
        final Map<String, Node> children = new HashMap<>();
        final List<int[]> slots = new ArrayList<>();
        Node lastElement; // for a[-1]: the path continues in the array's last element
        final List<int[]> below = new ArrayList<>(); // every slot under this node, cleared per array element

        Node child(String name) {
            return children.computeIfAbsent(name, k -> new Node());
        }
    }

    /** Sets what to read; returns this (called once, from the job's Python, before the job starts). */
    public ResultParser configure(String fieldsSpec, String requiredSpec) {
        List<String> n = new ArrayList<>();
        List<String> t = new ArrayList<>();
        List<String[]> p = new ArrayList<>();
        for (String part : fieldsSpec.split(",")) {
            int eq = part.indexOf('=');
            int colon = part.lastIndexOf(':');
            n.add(part.substring(0, eq).trim());
            p.add(part.substring(eq + 1, colon).trim().split("\\|"));
            t.add(part.substring(colon + 1).trim());
        }
        outputs = n.size();
        List<Integer> req = new ArrayList<>();
        for (String part : requiredSpec.split(",")) {
            int colon = part.indexOf(':');
            String name = part.substring(0, colon).trim();
            String type = part.substring(colon + 1).trim();
            int at = n.indexOf(name);
            if (at < 0 || !t.get(at).equals(type) || p.get(at).length != 1 || !p.get(at)[0].equals(name)) {
                at = n.size(); // a required field the detectors do not read: a hidden slot
                n.add(name);
                p.add(new String[] {name});
                t.add(type);
            }
            req.add(at);
        }
        names = n.toArray(new String[0]);
        types = t.toArray(new String[0]);
        paths = p.toArray(new String[0][]);
        required = req.stream().mapToInt(Integer::intValue).toArray();
        resultId = n.indexOf("result_id");
        startedAt = n.subList(0, outputs).indexOf("started_at_ms");
        if (resultId < 0 || startedAt < 0 || !"BIGINT".equals(types[startedAt])) {
            throw new IllegalArgumentException("result_id must be required and started_at_ms read as BIGINT");
        }
        root = null;
        return this;
    }

    /** The type of the {@code fields} row: named columns for the SQL table made from it. */
    public TypeInformation<Row> fieldsType() {
        TypeInformation<?>[] columns = new TypeInformation<?>[outputs];
        for (int i = 0; i < outputs; i++) {
            columns[i] = typeInfo(types[i]);
        }
        return Types.ROW_NAMED(Arrays.copyOf(names, outputs), columns);
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(
                new String[] {"raw", "id", "fields"},
                PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO,
                Types.LONG,
                fieldsType());
    }

    @Override
    public boolean isEndOfStream(Row nextElement) {
        return false;
    }

    @Override
    public long extractTimestamp(Row row, long kafkaTimestamp) {
        Row fields = (Row) row.getField(2);
        Object at = fields == null ? null : fields.getField(startedAt);
        return at == null ? kafkaTimestamp : (Long) at;
    }

    @Override
    public Row deserialize(byte[] message) {
        byte[] raw = message == null ? new byte[0] : message;
        Object[][] values = parse(raw);
        Row out = Row.withPositions(3);
        out.setField(0, raw);
        if (values == null) {
            return out;
        }
        for (int slot : required) {
            if (value(values, slot) == null) {
                return out;
            }
        }
        Row fields = Row.withPositions(outputs);
        for (int i = 0; i < outputs; i++) {
            fields.setField(i, value(values, i));
        }
        out.setField(1, hash64((String) value(values, resultId)));
        out.setField(2, fields);
        return out;
    }

    /** The slots' values (field, alternative) of one message, or null when it is not a JSON object. */
    private Object[][] parse(byte[] raw) {
        if (raw.length == 0) {
            return null;
        }
        if (factory == null) {
            factory = new JsonFactory();
        }
        if (root == null) {
            root = buildTree();
        }
        Object[][] values = new Object[names.length][];
        for (int i = 0; i < names.length; i++) {
            values[i] = new Object[paths[i].length];
        }
        try (JsonParser parser = factory.createParser(raw)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            walkObject(parser, root, values);
            if (parser.nextToken() != null) {
                return null; // text after the object
            }
        } catch (IOException | RuntimeException e) {
            return null;
        }
        return values;
    }

    /** From a START_OBJECT to its END_OBJECT, filling the slots of {@code node}'s fields. */
    private void walkObject(JsonParser parser, Node node, Object[][] values) throws IOException {
        JsonToken token;
        while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
            Node child = node.children.get(parser.getCurrentName());
            JsonToken value = parser.nextToken();
            if (child != null) {
                clear(child, values); // a field given twice counts with its last value
                for (int[] slot : child.slots) {
                    values[slot[0]][slot[1]] = scalar(parser, value, types[slot[0]]);
                }
                if (value == JsonToken.START_OBJECT && !child.children.isEmpty()) {
                    walkObject(parser, child, values);
                    continue;
                }
                if (value == JsonToken.START_ARRAY && child.lastElement != null) {
                    walkArray(parser, child.lastElement, values);
                    continue;
                }
            }
            if (value == JsonToken.START_OBJECT || value == JsonToken.START_ARRAY) {
                parser.skipChildren(); // still tokenized: malformed JSON anywhere is rejected
            }
        }
        if (token != JsonToken.END_OBJECT) {
            throw new IOException("not an object");
        }
    }

    /** From a START_ARRAY to its END_ARRAY: the slots under {@code element} end with the last element's. */
    private void walkArray(JsonParser parser, Node element, Object[][] values) throws IOException {
        JsonToken token;
        while ((token = parser.nextToken()) != JsonToken.END_ARRAY) {
            if (token == null) {
                throw new IOException("unterminated array");
            }
            clear(element, values);
            for (int[] slot : element.slots) {
                values[slot[0]][slot[1]] = scalar(parser, token, types[slot[0]]);
            }
            if (token == JsonToken.START_OBJECT) {
                walkObject(parser, element, values);
            } else if (token == JsonToken.START_ARRAY) {
                parser.skipChildren();
            }
        }
    }

    private static void clear(Node node, Object[][] values) {
        for (int[] slot : node.below) {
            values[slot[0]][slot[1]] = null;
        }
    }

    private static Object value(Object[][] values, int field) {
        for (Object v : values[field]) {
            if (v != null) {
                return v;
            }
        }
        return null;
    }

    private static Object scalar(JsonParser parser, JsonToken token, String type) throws IOException {
        switch (type) {
            case "STRING":
                return token == JsonToken.VALUE_STRING ? parser.getText() : null;
            case "BIGINT":
                if (token != JsonToken.VALUE_NUMBER_INT) {
                    return null;
                }
                return parser.getNumberType() == JsonParser.NumberType.BIG_INTEGER ? null : parser.getLongValue();
            case "DOUBLE":
                boolean number = token == JsonToken.VALUE_NUMBER_INT || token == JsonToken.VALUE_NUMBER_FLOAT;
                return number ? parser.getDoubleValue() : null;
            case "BOOLEAN":
                if (token == JsonToken.VALUE_TRUE || token == JsonToken.VALUE_FALSE) {
                    return token == JsonToken.VALUE_TRUE;
                }
                return null;
            default:
                throw new IllegalArgumentException("unknown type " + type);
        }
    }

    private static TypeInformation<?> typeInfo(String type) {
        switch (type) {
            case "STRING":
                return Types.STRING;
            case "BIGINT":
                return Types.LONG;
            case "DOUBLE":
                return Types.DOUBLE;
            case "BOOLEAN":
                return Types.BOOLEAN;
            default:
                throw new IllegalArgumentException("unknown type " + type);
        }
    }

    private Node buildTree() {
        Node top = new Node();
        for (int field = 0; field < names.length; field++) {
            for (int alt = 0; alt < paths[field].length; alt++) {
                int[] slot = {field, alt};
                Node node = top;
                for (String segment : paths[field][alt].split("\\.")) {
                    boolean last = segment.endsWith("[-1]");
                    node = node.child(last ? segment.substring(0, segment.length() - 4) : segment);
                    node.below.add(slot);
                    if (last) {
                        if (node.lastElement == null) {
                            node.lastElement = new Node();
                        }
                        node = node.lastElement;
                        node.below.add(slot);
                    }
                }
                node.slots.add(slot);
            }
        }
        return top;
    }

    /** A 64-bit hash of a result_id (FNV-1a over the chars, then a murmur3 finalizer). */
    public static long hash64(String text) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < text.length(); i++) {
            h ^= text.charAt(i);
            h *= 0x100000001b3L;
        }
        h ^= h >>> 33;
        h *= 0xff51afd7ed558ccdL;
        h ^= h >>> 33;
        h *= 0xc4ceb93fe53ab9bL;
        h ^= h >>> 33;
        return h;
    }
}
