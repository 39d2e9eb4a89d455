package polystore.fiji;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import com.google.gson.TypeAdapter;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;

import java.io.StringReader;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

/**
 * JSON on the wire, with gson (which Fiji ships): strict parsing of headers and
 * control requests, and writing of control replies.
 *
 * <p>Strict means what Python's {@code json} module accepts: no NaN/Infinity, no
 * comments, no trailing data, no raw control characters in strings; in addition
 * documents nested deeper than {@link #MAX_DEPTH} are refused before parsing.
 */
final class Wire {
    /** Largest header or control request, in bytes. */
    static final int MAX_BYTES = 64 * 1024;
    /** Deepest nesting of arrays/objects accepted. */
    static final int MAX_DEPTH = 64;
    private static final Pattern INTEGER = Pattern.compile("-?(0|[1-9][0-9]*)");
    private static final Gson GSON = new GsonBuilder().serializeNulls().disableHtmlEscaping().create();
    private static final TypeAdapter<JsonElement> ELEMENT = GSON.getAdapter(JsonElement.class);

    private Wire() {
    }

    /** Decode UTF-8 bytes holding one JSON object; {@code what} names it in errors. */
    static JsonObject parseObject(byte[] raw, String what) throws Header.Invalid {
        return parseObject(raw, what, MAX_BYTES);
    }

    /** As {@link #parseObject(byte[], String)} with another size limit (the annotation table frame). */
    static JsonObject parseObject(byte[] raw, String what, int maxBytes) throws Header.Invalid {
        if (raw.length > maxBytes) {
            throw new Header.Invalid(what + " larger than " + maxBytes + " bytes");
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(raw)).toString();
        } catch (CharacterCodingException e) {
            throw new Header.Invalid(what + " is not UTF-8");
        }
        checkShape(text, what);
        JsonElement doc;
        try {
            JsonReader reader = new JsonReader(new StringReader(text));
            reader.setLenient(false);
            doc = ELEMENT.read(reader);
            if (reader.peek() != JsonToken.END_DOCUMENT) {
                throw new Header.Invalid(what + " has data after the JSON value");
            }
        } catch (Header.Invalid e) {
            throw e;
        } catch (Exception e) {
            throw new Header.Invalid(what + " is not JSON: " + e.getMessage());
        }
        if (doc == null || !doc.isJsonObject()) {
            throw new Header.Invalid(what + " is not a JSON object");
        }
        return doc.getAsJsonObject();
    }

    /** Refuse nesting deeper than MAX_DEPTH and raw control characters inside strings. */
    private static void checkShape(String text, String what) throws Header.Invalid {
        int depth = 0;
        boolean inString = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (inString) {
                if (c == '\\') {
                    i++;
                } else if (c == '"') {
                    inString = false;
                } else if (c < 0x20) {
                    throw new Header.Invalid(what + " has a raw control character in a string");
                }
            } else if (c == '"') {
                inString = true;
            } else if (c == '[' || c == '{') {
                if (++depth > MAX_DEPTH) {
                    throw new Header.Invalid(what + " is nested deeper than " + MAX_DEPTH + " levels");
                }
            } else if (c == ']' || c == '}') {
                depth--;
            }
        }
    }

    /** The value as an exact integer, or null when it is not a JSON integer (1.0, true, "1" are not). */
    static BigInteger integer(JsonElement e) {
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            return null;
        }
        String s = e.getAsJsonPrimitive().getAsString();
        if (!INTEGER.matcher(s).matches()) {
            return null;
        }
        return new BigInteger(s);
    }

    /** The value as a number, or null when it is not a JSON number. */
    static BigDecimal number(JsonElement e) {
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            return null;
        }
        try {
            return new BigDecimal(e.getAsJsonPrimitive().getAsString());
        } catch (NumberFormatException ex) {
            return null;
        }
    }

    /** True for a JSON number that is finite as a double (1e999 is not). */
    static boolean finiteNumber(JsonElement e) {
        BigDecimal d = number(e);
        return d != null && !Double.isInfinite(d.doubleValue());
    }

    /** The value as a string, or null when it is not a JSON string. */
    static String string(JsonElement e) {
        if (e == null || !e.isJsonPrimitive() || !((JsonPrimitive) e).isString()) {
            return null;
        }
        return e.getAsString();
    }

    /** A reply (maps, lists, strings, numbers, booleans, null) as UTF-8 JSON. */
    static byte[] write(Object reply) {
        return GSON.toJson(reply).getBytes(StandardCharsets.UTF_8);
    }
}
