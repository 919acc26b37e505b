package io.netobs.flink;

import java.util.HashMap;
import java.util.Map;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code netobs_result_id(raw, spec)}: the record's result_id when the message is a processable result
 * record, else NULL (the message goes to the dead-letter topic). One JSON parse per message, where the
 * SQL JSON functions would parse it once per field. {@code spec} lists the required fields as
 * {@code name:TYPE,...} (TYPE: STRING, BIGINT, BOOLEAN); the job builds it from netobs_flink/record.py,
 * the one definition of the rule.
 */
public final class ResultId extends ScalarFunction {
    private static final long serialVersionUID = 1L;
    private transient ObjectMapper mapper;
    private transient String cachedSpec;
    private transient Map<String, String> required;

    public String eval(String raw, String spec) {
        if (raw == null || raw.isEmpty()) {
            return null;
        }
        if (mapper == null) {
            mapper = new ObjectMapper();
        }
        if (!spec.equals(cachedSpec)) {
            required = parse(spec);
            cachedSpec = spec;
        }
        JsonNode node;
        try {
            node = mapper.readTree(raw);
        } catch (Exception e) {
            return null;
        }
        if (node == null || !node.isObject()) {
            return null;
        }
        for (Map.Entry<String, String> field : required.entrySet()) {
            JsonNode value = node.get(field.getKey());
            if (value == null || !fits(value, field.getValue())) {
                return null;
            }
        }
        JsonNode id = node.get("result_id");
        return id == null ? null : id.asText();
    }

    private static boolean fits(JsonNode value, String type) {
        switch (type) {
            case "STRING":
                return value.isTextual();
            case "BIGINT":
                return value.isIntegralNumber();
            case "BOOLEAN":
                return value.isBoolean();
            default:
                return !value.isNull();
        }
    }

    private static Map<String, String> parse(String spec) {
        Map<String, String> out = new HashMap<>();
        for (String part : spec.split(",")) {
            int colon = part.indexOf(':');
            if (colon > 0) {
                out.put(part.substring(0, colon).trim(), part.substring(colon + 1).trim());
            }
        }
        return out;
    }
}
