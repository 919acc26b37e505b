package io.netobs.flink;

import java.util.HashMap;
import java.util.Map;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
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
    private transient JsonFactory factory;
    private transient String cachedSpec;
    private transient Map<String, String> required;

    public String eval(String raw, String spec) {
        if (raw == null || raw.isEmpty()) {
            return null;
        }
        if (factory == null) {
            factory = new JsonFactory();
        }
        if (!spec.equals(cachedSpec)) {
            required = parse(spec);
            cachedSpec = spec;
        }
        // A streaming parse of the top level: the required fields are top-level scalars, nested values are
        // skipped (still tokenized, so malformed JSON anywhere is rejected), and no tree is built.
        // A field given twice counts with its last value, as in a parsed tree.
        Map<String, Boolean> fits = new HashMap<>();
        String resultId = null;
        try (JsonParser parser = factory.createParser(raw)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            JsonToken token;
            while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
                String name = parser.getCurrentName();
                JsonToken value = parser.nextToken();
                String type = required.get(name);
                if (type != null) {
                    fits.put(name, fits(value, type));
                }
                if ("result_id".equals(name)) {
                    resultId = value == JsonToken.VALUE_STRING ? parser.getText() : null;
                }
                if (value == JsonToken.START_OBJECT || value == JsonToken.START_ARRAY) {
                    parser.skipChildren();
                }
            }
            if (token != JsonToken.END_OBJECT) {
                return null;
            }
        } catch (Exception e) {
            return null;
        }
        for (String name : required.keySet()) {
            if (!Boolean.TRUE.equals(fits.get(name))) {
                return null;
            }
        }
        return resultId;
    }

    private static boolean fits(JsonToken value, String type) {
        switch (type) {
            case "STRING":
                return value == JsonToken.VALUE_STRING;
            case "BIGINT":
                return value == JsonToken.VALUE_NUMBER_INT;
            case "BOOLEAN":
                return value == JsonToken.VALUE_TRUE || value == JsonToken.VALUE_FALSE;
            default:
                return value != JsonToken.VALUE_NULL;
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
