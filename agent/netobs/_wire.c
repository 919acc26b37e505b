/* netobs._wire: the OTLP protobuf writers of the agent's spans and result log records, in C.
 *
 * Theory of operation. The agent's export threads write every span and every result log record in the
 * protobuf wire format themselves (netobs._lightspans._span, netobs._resultlogs._record); in Python that
 * costs ~5 us per span and ~3 us per record, several thousand times a second. These functions write the
 * same bytes (the tests compare them with the Python writers, which the tests compare with the
 * OpenTelemetry SDK's encoders) from the same objects in well under a microsecond.
 *
 * Anything they do not handle the same way (an attribute value that is not a str, bool, int, float,
 * bytes, list or tuple; a number out of range; text that is not valid UTF-8) makes them return None
 * with no exception set, and the caller writes that batch with the Python writer, which logs or raises
 * exactly as before. So the C code never has to reproduce an error path.
 *
 * Layout notes. A length-delimited field is written with a 5-byte gap for its length (enough for any
 * length below 2^35); when the payload is complete, the payload is moved down to close the gap left by
 * the minimal varint, so the output is the canonical encoding.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <structmember.h>

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

#define LEN_GAP 5

static int buf_grow(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) {
        return 0;
    }
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) {
        cap *= 2;
    }
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int put(Buf *b, const void *src, Py_ssize_t n) {
    if (buf_grow(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

static int varint_size(uint64_t n) {
    int size = 1;
    while (n >= 0x80) {
        n >>= 7;
        size++;
    }
    return size;
}

static void write_varint(char *p, uint64_t n) {
    while (n >= 0x80) {
        *p++ = (char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    *p = (char)n;
}

static int put_varint(Buf *b, uint64_t n) {
    if (buf_grow(b, 10) < 0) {
        return -1;
    }
    write_varint(b->data + b->len, n);
    b->len += varint_size(n);
    return 0;
}

static int put_fixed64(Buf *b, uint64_t n) {
    char out[8];
    for (int i = 0; i < 8; i++) {
        out[i] = (char)(n >> (8 * i));
    }
    return put(b, out, 8);
}

static int put_fixed32(Buf *b, uint32_t n) {
    char out[4];
    for (int i = 0; i < 4; i++) {
        out[i] = (char)(n >> (8 * i));
    }
    return put(b, out, 4);
}

/* Opens the length-delimited field `tag`: returns where its length goes (for close_field), or -1. */
static Py_ssize_t open_field(Buf *b, unsigned char tag) {
    if (buf_grow(b, 1 + LEN_GAP) < 0) {
        return -1;
    }
    b->data[b->len++] = (char)tag;
    Py_ssize_t at = b->len;
    b->len += LEN_GAP;
    return at;
}

static void close_field(Buf *b, Py_ssize_t at) {
    Py_ssize_t payload = b->len - at - LEN_GAP;
    int size = varint_size((uint64_t)payload);
    memmove(b->data + at + size, b->data + at + LEN_GAP, (size_t)payload);
    write_varint(b->data + at, (uint64_t)payload);
    b->len -= LEN_GAP - size;
}

static int put_bytes_field(Buf *b, unsigned char tag, const char *src, Py_ssize_t n) {
    if (buf_grow(b, 1 + 10 + n) < 0) {
        return -1;
    }
    b->data[b->len++] = (char)tag;
    write_varint(b->data + b->len, (uint64_t)n);
    b->len += varint_size((uint64_t)n);
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

/* A str as a length-delimited field. -1 with an exception set when it is not valid UTF-8. */
static int put_str_field(Buf *b, unsigned char tag, PyObject *text) {
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    if (utf8 == NULL) {
        return -1;
    }
    return put_bytes_field(b, tag, utf8, n);
}

/* Failure of a writer: 0 is success, -1 means "not handled here, let Python write it" (any exception is
 * cleared by the entry points before they return None). */

static int put_any_value(Buf *b, PyObject *value, int depth);

static int put_array(Buf *b, PyObject *seq, int depth) {
    Py_ssize_t at = open_field(b, 0x2a); /* AnyValue.array_value */
    if (at < 0) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t item = open_field(b, 0x0a); /* ArrayValue.values */
        if (item < 0 || put_any_value(b, items[i], depth + 1) < 0) {
            return -1;
        }
        close_field(b, item);
    }
    close_field(b, at);
    return 0;
}

/* The AnyValue message's fields, in the order of the Python writer's type tests. */
static int put_any_value(Buf *b, PyObject *value, int depth) {
    if (PyUnicode_Check(value)) {
        return put_str_field(b, 0x0a, value);
    }
    if (PyBool_Check(value)) {
        char out[2] = {0x10, value == Py_True ? 1 : 0};
        return put(b, out, 2);
    }
    if (PyLong_Check(value)) {
        uint64_t n = PyLong_AsUnsignedLongLongMask(value); /* two's complement, as `value & (2**64 - 1)` */
        if (n == (uint64_t)-1 && PyErr_Occurred()) {
            return -1;
        }
        char tag = 0x18;
        return put(b, &tag, 1) < 0 ? -1 : put_varint(b, n);
    }
    if (PyFloat_Check(value)) {
        char out[9];
        out[0] = 0x21;
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(value), out + 1, 1) < 0) {
            return -1;
        }
        return put(b, out, 9);
    }
    if (PyBytes_Check(value)) {
        return put_bytes_field(b, 0x3a, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    }
    if ((PyList_Check(value) || PyTuple_Check(value)) && depth < 16) {
        return put_array(b, value, depth);
    }
    return -1;
}

/* The repeated KeyValue field `tag` from a dict of attributes. */
static int put_attributes(Buf *b, unsigned char tag, PyObject *attrs) {
    if (!PyDict_Check(attrs)) {
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(attrs, &pos, &key, &value)) {
        if (!PyUnicode_Check(key)) {
            return -1;
        }
        Py_ssize_t kv = open_field(b, tag);
        if (kv < 0 || put_str_field(b, 0x0a, key) < 0) {
            return -1;
        }
        Py_ssize_t any = open_field(b, 0x12);
        if (any < 0 || put_any_value(b, value, 0) < 0) {
            return -1;
        }
        close_field(b, any);
        close_field(b, kv);
    }
    return 0;
}

/* An unsigned integer of `size` bytes, big-endian (ids), from a Python int. */
static int put_id(Buf *b, PyObject *value, size_t size) {
    unsigned char out[16];
    if (!PyLong_Check(value) || size > sizeof out) {
        return -1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    if (_PyLong_AsByteArray((PyLongObject *)value, out, size, 0, 0, 1) < 0) {
#else
    if (_PyLong_AsByteArray((PyLongObject *)value, out, size, 0, 0) < 0) {
#endif
        return -1;
    }
    return put(b, out, (Py_ssize_t)size);
}

static int put_u64_of(Buf *b, PyObject *value) {
    if (!PyLong_Check(value)) {
        return -1;
    }
    uint64_t n = PyLong_AsUnsignedLongLong(value);
    if (n == (uint64_t)-1 && PyErr_Occurred()) {
        return -1;
    }
    return put_fixed64(b, n);
}

/* Index of `item` (by identity) in the tuple `members`, or -1. */
static Py_ssize_t member_index(PyObject *members, PyObject *item) {
    Py_ssize_t n = PyTuple_GET_SIZE(members);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyTuple_GET_ITEM(members, i) == item) {
            return i;
        }
    }
    return -1;
}

/* The interned attribute names of a LightSpan, set up once at module init. */
enum {
    S_TRACE_ID,
    S_SPAN_ID,
    S_PARENT_SPAN_ID,
    S_NAME,
    S_KIND,
    S_START_TIME,
    S_END_TIME,
    S_ATTRIBUTES,
    S_EVENTS,
    S_STATUS_CODE,
    S_STATUS_DESCRIPTION,
    S_PARENT_IS_REMOTE,
    S_COUNT
};
static const char *span_field_names[S_COUNT] = {
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time",
    "attributes", "events", "status_code", "status_description", "parent_is_remote",
};
static PyObject *span_fields[S_COUNT];

#define SPAN_FLAGS_HAS_IS_REMOTE 0x100
#define SPAN_FLAGS_IS_REMOTE 0x200

static int put_event(Buf *b, PyObject *event) {
    if (!PyTuple_Check(event) || PyTuple_GET_SIZE(event) != 3) {
        return -1;
    }
    PyObject *name = PyTuple_GET_ITEM(event, 0);
    PyObject *attrs = PyTuple_GET_ITEM(event, 1);
    PyObject *ts = PyTuple_GET_ITEM(event, 2);
    if (!PyUnicode_Check(name)) {
        return -1;
    }
    Py_ssize_t at = open_field(b, 0x5a); /* Span.events */
    char tag = 0x09;
    if (at < 0 || put(b, &tag, 1) < 0 || put_u64_of(b, ts) < 0 || put_str_field(b, 0x12, name) < 0 ||
        put_attributes(b, 0x1a, attrs) < 0) {
        return -1;
    }
    close_field(b, at);
    return 0;
}

/* One span as ScopeSpans.spans (field 2); `f` holds its fields (new references). */
static int put_span(Buf *b, PyObject **f, PyObject *kinds, PyObject *statuses) {
    Py_ssize_t at = open_field(b, 0x12);
    char tag;
    if (at < 0) {
        return -1;
    }
    tag = 0x0a;
    if (put(b, &tag, 1) < 0 || put_varint(b, 16) < 0 || put_id(b, f[S_TRACE_ID], 16) < 0) {
        return -1;
    }
    tag = 0x12;
    if (put(b, &tag, 1) < 0 || put_varint(b, 8) < 0 || put_id(b, f[S_SPAN_ID], 8) < 0) {
        return -1;
    }
    if (f[S_PARENT_SPAN_ID] != Py_None) {
        tag = 0x22;
        if (put(b, &tag, 1) < 0 || put_varint(b, 8) < 0 || put_id(b, f[S_PARENT_SPAN_ID], 8) < 0) {
            return -1;
        }
    }
    if (!PyUnicode_Check(f[S_NAME]) || put_str_field(b, 0x2a, f[S_NAME]) < 0) {
        return -1;
    }
    Py_ssize_t kind = member_index(kinds, f[S_KIND]);
    if (kind < 0) {
        return -1;
    }
    char kind_field[2] = {0x30, (char)(kind + 1)}; /* the protobuf enum has UNSPECIFIED = 0 first */
    if (put(b, kind_field, 2) < 0) {
        return -1;
    }
    tag = 0x39;
    if (put(b, &tag, 1) < 0 || put_u64_of(b, f[S_START_TIME]) < 0) {
        return -1;
    }
    tag = 0x41;
    if (put(b, &tag, 1) < 0) {
        return -1;
    }
    if (f[S_END_TIME] == Py_None ? put_fixed64(b, 0) < 0 : put_u64_of(b, f[S_END_TIME]) < 0) {
        return -1;
    }
    PyObject *attrs = f[S_ATTRIBUTES];
    if (!PyDict_Check(attrs) || put_attributes(b, 0x4a, attrs) < 0) {
        return -1;
    }
    PyObject *events = f[S_EVENTS];
    if (!PyList_Check(events)) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
        if (put_event(b, PyList_GET_ITEM(events, i)) < 0) {
            return -1;
        }
    }
    Py_ssize_t status = open_field(b, 0x7a);
    if (status < 0) {
        return -1;
    }
    PyObject *description = f[S_STATUS_DESCRIPTION];
    if (description != Py_None && !(PyUnicode_Check(description) && PyUnicode_GET_LENGTH(description) == 0)) {
        if (!PyUnicode_Check(description) || put_str_field(b, 0x12, description) < 0) {
            return -1;
        }
    }
    Py_ssize_t code = member_index(statuses, f[S_STATUS_CODE]);
    if (code < 0) {
        return -1;
    }
    if (code != 0) { /* UNSET is not written */
        char code_field[2] = {0x18, (char)code};
        if (put(b, code_field, 2) < 0) {
            return -1;
        }
    }
    close_field(b, status);
    int remote = PyObject_IsTrue(f[S_PARENT_IS_REMOTE]);
    if (remote < 0) {
        return -1;
    }
    char flags_tag[2] = {(char)0x85, 0x01};
    uint32_t flags = SPAN_FLAGS_HAS_IS_REMOTE | (remote ? SPAN_FLAGS_IS_REMOTE : 0);
    if (put(b, flags_tag, 2) < 0 || put_fixed32(b, flags) < 0) {
        return -1;
    }
    close_field(b, at);
    return 0;
}

/* The entry points' result: the bytes written, or None (no exception) when a writer declined, or NULL when
 * memory ran out. */
static PyObject *finish(Buf *b, int ok) {
    if (!ok && PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_MemoryError)) {
        PyMem_Free(b->data);
        return NULL;
    }
    PyErr_Clear();
    PyObject *out = ok ? PyBytes_FromStringAndSize(b->data ? b->data : "", b->len) : Py_NewRef(Py_None);
    PyMem_Free(b->data);
    return out;
}

PyDoc_STRVAR(encode_spans_doc,
             "encode_spans(spans, kinds, statuses) -> bytes | None\n\n"
             "The ScopeSpans.spans fields of `spans` (LightSpan objects), as _lightspans._span writes them.\n"
             "`kinds`: the SpanKind members in protobuf order (INTERNAL first); `statuses`: the StatusCode\n"
             "members (UNSET, OK, ERROR). None when a span holds something only the Python writer handles.");

/* Writes each item of the sequence `items` with `put_item`; the entry points' shared loop. */
typedef int (*put_item_fn)(Buf *b, PyObject *item, void *context);

static PyObject *encode_each(PyObject *items, const char *not_a_sequence, put_item_fn put_item, void *context) {
    PyObject *seq = PySequence_Fast(items, not_a_sequence);
    if (seq == NULL) {
        return NULL;
    }
    Buf b = {NULL, 0, 0};
    int ok = 1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **item = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n && ok; i++) {
        ok = put_item(&b, item[i], context) == 0;
    }
    Py_DECREF(seq);
    return finish(&b, ok);
}

/* -- SpanCore: the data of one of the light tracer's spans ----------------------------------------------
 * netobs._lightspans.LightSpan derives from this type (or from PySpanCore, its Python reference, when the
 * module is not built): its fields live in the object itself, construction is one C call with positional
 * arguments, and `end` stamps the time and hands the span to its `on_end` callback in C. A run makes three
 * (TCP) to five (HTTP) spans; in Python their construction and end were ~15% of a run's loop time. The
 * fields keep the names and meaning of PySpanCore's slots, so the Python methods of LightSpan and both
 * span writers read them alike. */

typedef struct {
    PyObject_HEAD
    PyObject *name;
    PyObject *trace_id;
    PyObject *span_id;
    PyObject *parent_span_id;
    PyObject *kind;
    PyObject *attributes;
    PyObject *events;
    PyObject *start_time;
    PyObject *end_time;
    PyObject *status_code;
    PyObject *status_description;
    PyObject *context;
    PyObject *on_end;
    PyObject *parent_is_remote;
} SpanCore;

#define SPAN_CORE_FIELDS(X)                                                                                 \
    X(name) X(trace_id) X(span_id) X(parent_span_id) X(kind) X(attributes) X(events) X(start_time)          \
    X(end_time) X(status_code) X(status_description) X(context) X(on_end) X(parent_is_remote)

static PyObject *now_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

static int SpanCore_traverse(SpanCore *self, visitproc visit, void *arg) {
#define VISIT_FIELD(f) Py_VISIT(self->f);
    SPAN_CORE_FIELDS(VISIT_FIELD)
#undef VISIT_FIELD
    return 0;
}

static int SpanCore_clear(SpanCore *self) {
#define CLEAR_FIELD(f) Py_CLEAR(self->f);
    SPAN_CORE_FIELDS(CLEAR_FIELD)
#undef CLEAR_FIELD
    return 0;
}

static void SpanCore_dealloc(SpanCore *self) {
    PyObject_GC_UnTrack(self);
    SpanCore_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static const char span_core_signature[] =
    "SpanCore(name, trace_id, span_id, parent_span_id, kind, attributes, start_time, on_end, "
    "parent_is_remote, status_code): 10 positional arguments";

static PyObject *SpanCore_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) || PyTuple_GET_SIZE(args) != 10) {
        PyErr_SetString(PyExc_TypeError, span_core_signature);
        return NULL;
    }
    PyObject *attributes = PyTuple_GET_ITEM(args, 5);
    if (!PyDict_Check(attributes)) {
        PyErr_SetString(PyExc_TypeError, "SpanCore: attributes must be a dict");
        return NULL;
    }
    SpanCore *self = (SpanCore *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    PyObject *start_time = PyTuple_GET_ITEM(args, 6);
    if (start_time == Py_None) {
        self->start_time = now_ns();
        if (self->start_time == NULL) {
            Py_DECREF(self);
            return NULL;
        }
    } else {
        self->start_time = Py_NewRef(start_time);
    }
    self->events = PyList_New(0);
    if (self->events == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->name = Py_NewRef(PyTuple_GET_ITEM(args, 0));
    self->trace_id = Py_NewRef(PyTuple_GET_ITEM(args, 1));
    self->span_id = Py_NewRef(PyTuple_GET_ITEM(args, 2));
    self->parent_span_id = Py_NewRef(PyTuple_GET_ITEM(args, 3));
    self->kind = Py_NewRef(PyTuple_GET_ITEM(args, 4));
    self->attributes = Py_NewRef(attributes);
    self->on_end = Py_NewRef(PyTuple_GET_ITEM(args, 7));
    self->parent_is_remote = Py_NewRef(PyTuple_GET_ITEM(args, 8));
    self->status_code = Py_NewRef(PyTuple_GET_ITEM(args, 9));
    self->end_time = Py_NewRef(Py_None);
    self->status_description = Py_NewRef(Py_None);
    self->context = Py_NewRef(Py_None);
    return (PyObject *)self;
}

static PyObject *SpanCore_end(SpanCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = {"end_time", NULL};
    PyObject *end_time = Py_None;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs + nkw > 1 || (nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), names[0]) != 0)) {
        PyErr_SetString(PyExc_TypeError, "end() takes one optional argument, end_time");
        return NULL;
    }
    if (nargs + nkw == 1) {
        end_time = args[0];
    }
    if (self->end_time != NULL && self->end_time != Py_None) {
        Py_RETURN_NONE; /* ended already: a second end is ignored, as the SDK does */
    }
    if (self->on_end == NULL) {
        PyErr_SetString(PyExc_TypeError, "end(): the span has no on_end callback");
        return NULL;
    }
    int given = PyObject_IsTrue(end_time); /* `end_time or now`, as LightSpan.end in Python */
    if (given < 0) {
        return NULL;
    }
    PyObject *stamp = given ? Py_NewRef(end_time) : now_ns();
    if (stamp == NULL) {
        return NULL;
    }
    Py_SETREF(self->end_time, stamp);
    PyObject *out = PyObject_CallOneArg(self->on_end, (PyObject *)self);
    if (out == NULL) {
        return NULL;
    }
    Py_DECREF(out);
    Py_RETURN_NONE;
}

static PyMethodDef SpanCore_methods[] = {
    {"end", (PyCFunction)(void (*)(void))SpanCore_end, METH_FASTCALL | METH_KEYWORDS,
     "end(end_time=None): stamp the end (now when not given) and pass the span to on_end; once only."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef SpanCore_members[] = {
    {"name", T_OBJECT, offsetof(SpanCore, name), 0, NULL},
    {"trace_id", T_OBJECT, offsetof(SpanCore, trace_id), 0, NULL},
    {"span_id", T_OBJECT, offsetof(SpanCore, span_id), 0, NULL},
    {"parent_span_id", T_OBJECT, offsetof(SpanCore, parent_span_id), 0, NULL},
    {"kind", T_OBJECT, offsetof(SpanCore, kind), 0, NULL},
    {"attributes", T_OBJECT, offsetof(SpanCore, attributes), 0, NULL},
    {"events", T_OBJECT, offsetof(SpanCore, events), 0, NULL},
    {"start_time", T_OBJECT, offsetof(SpanCore, start_time), 0, NULL},
    {"end_time", T_OBJECT, offsetof(SpanCore, end_time), 0, NULL},
    {"status_code", T_OBJECT, offsetof(SpanCore, status_code), 0, NULL},
    {"status_description", T_OBJECT, offsetof(SpanCore, status_description), 0, NULL},
    {"_context", T_OBJECT, offsetof(SpanCore, context), 0, NULL},
    {"_on_end", T_OBJECT, offsetof(SpanCore, on_end), 0, NULL},
    {"parent_is_remote", T_OBJECT, offsetof(SpanCore, parent_is_remote), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SpanCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netobs._wire.SpanCore",
    .tp_basicsize = sizeof(SpanCore),
    .tp_dealloc = (destructor)SpanCore_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = span_core_signature,
    .tp_traverse = (traverseproc)SpanCore_traverse,
    .tp_clear = (inquiry)SpanCore_clear,
    .tp_methods = SpanCore_methods,
    .tp_members = SpanCore_members,
    .tp_new = SpanCore_new,
};

typedef struct {
    PyObject *kinds;
    PyObject *statuses;
} SpanContext;

static int put_span_item(Buf *b, PyObject *span, void *context) {
    SpanContext *c = context;
    PyObject *f[S_COUNT] = {NULL};
    int ok = 1;
    if (PyObject_TypeCheck(span, &SpanCoreType)) { /* the fields in the object: no attribute lookups */
        SpanCore *s = (SpanCore *)span;
        PyObject *direct[S_COUNT] = {
            [S_TRACE_ID] = s->trace_id,     [S_SPAN_ID] = s->span_id,       [S_PARENT_SPAN_ID] = s->parent_span_id,
            [S_NAME] = s->name,             [S_KIND] = s->kind,             [S_START_TIME] = s->start_time,
            [S_END_TIME] = s->end_time,     [S_ATTRIBUTES] = s->attributes, [S_EVENTS] = s->events,
            [S_STATUS_CODE] = s->status_code, [S_STATUS_DESCRIPTION] = s->status_description,
            [S_PARENT_IS_REMOTE] = s->parent_is_remote,
        };
        for (int k = 0; k < S_COUNT; k++) {
            f[k] = Py_NewRef(direct[k] != NULL ? direct[k] : Py_None); /* a deleted field reads as None */
        }
    } else {
        for (int k = 0; k < S_COUNT && ok; k++) {
            f[k] = PyObject_GetAttr(span, span_fields[k]);
            ok = f[k] != NULL;
        }
    }
    ok = ok && put_span(b, f, c->kinds, c->statuses) == 0;
    for (int k = 0; k < S_COUNT; k++) {
        Py_XDECREF(f[k]);
    }
    return ok ? 0 : -1;
}

static PyObject *encode_spans(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[1]) || !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "encode_spans(spans, kinds: tuple, statuses: tuple)");
        return NULL;
    }
    SpanContext context = {args[1], args[2]};
    return encode_each(args[0], "encode_spans: spans must be a sequence", put_span_item, &context);
}

PyDoc_STRVAR(encode_result_logs_doc,
             "encode_result_logs(records, severity_number, event_name) -> bytes | None\n\n"
             "The ScopeLogs.log_records fields of `records`, tuples (time_unix_nano, observed_time_unix_nano,\n"
             "body, check name, check type, result id), as _resultlogs._record writes them. None when a\n"
             "record holds something only the Python writer handles.");

static PyObject *key_check_name, *key_check_type, *key_result_id;

static int put_string_attribute(Buf *b, PyObject *key, PyObject *value) {
    if (!PyUnicode_Check(value)) {
        return -1;
    }
    Py_ssize_t kv = open_field(b, 0x32); /* LogRecord.attributes */
    if (kv < 0 || put_str_field(b, 0x0a, key) < 0) {
        return -1;
    }
    Py_ssize_t any = open_field(b, 0x12);
    if (any < 0 || put_str_field(b, 0x0a, value) < 0) {
        return -1;
    }
    close_field(b, any);
    close_field(b, kv);
    return 0;
}

static int put_log(Buf *b, PyObject *record, uint64_t severity, PyObject *event_name) {
    if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) != 6) {
        return -1;
    }
    PyObject *body = PyTuple_GET_ITEM(record, 2);
    if (!PyUnicode_Check(body)) {
        return -1;
    }
    Py_ssize_t at = open_field(b, 0x12); /* ScopeLogs.log_records */
    char tag = 0x09;
    if (at < 0 || put(b, &tag, 1) < 0 || put_u64_of(b, PyTuple_GET_ITEM(record, 0)) < 0) {
        return -1;
    }
    tag = 0x10;
    if (put(b, &tag, 1) < 0 || put_varint(b, severity) < 0) {
        return -1;
    }
    Py_ssize_t body_field = open_field(b, 0x2a);
    if (body_field < 0 || put_str_field(b, 0x0a, body) < 0) {
        return -1;
    }
    close_field(b, body_field);
    if (put_string_attribute(b, key_check_name, PyTuple_GET_ITEM(record, 3)) < 0 ||
        put_string_attribute(b, key_check_type, PyTuple_GET_ITEM(record, 4)) < 0 ||
        put_string_attribute(b, key_result_id, PyTuple_GET_ITEM(record, 5)) < 0) {
        return -1;
    }
    tag = 0x59;
    if (put(b, &tag, 1) < 0 || put_u64_of(b, PyTuple_GET_ITEM(record, 1)) < 0 ||
        put_str_field(b, 0x62, event_name) < 0) {
        return -1;
    }
    close_field(b, at);
    return 0;
}

typedef struct {
    uint64_t severity;
    PyObject *event_name;
} LogContext;

static int put_log_item(Buf *b, PyObject *record, void *context) {
    LogContext *c = context;
    return put_log(b, record, c->severity, c->event_name);
}

static PyObject *encode_result_logs(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyLong_Check(args[1]) || !PyUnicode_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "encode_result_logs(records, severity_number: int, event_name: str)");
        return NULL;
    }
    LogContext context = {PyLong_AsUnsignedLongLong(args[1]), args[2]};
    if (context.severity == (uint64_t)-1 && PyErr_Occurred()) {
        return NULL;
    }
    return encode_each(args[0], "encode_result_logs: records must be a sequence", put_log_item, &context);
}

/* -- Buckets: one histogram series' numbers -------------------------------------------------------------
 * The explicit-bucket counts, count, sum, min and max of one series (netobs._fastmetrics). `add` is one C
 * call, so it is atomic under the GIL: a snapshot taken by the metric export thread never sees a count
 * that disagrees with its buckets, without a lock on the event loop's path. */

typedef struct {
    PyObject_HEAD
    Py_ssize_t n_bounds;
    double *bounds;
    unsigned long long *counts; /* n_bounds + 1 */
    unsigned long long count;
    double sum;
    double min;
    double max;
} Buckets;

static void Buckets_dealloc(Buckets *self) {
    PyMem_Free(self->bounds);
    PyMem_Free(self->counts);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Buckets_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *bounds_arg;
    static char *keywords[] = {"bounds", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Buckets", keywords, &bounds_arg)) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(bounds_arg, "Buckets: bounds must be a sequence of floats");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Buckets *self = (Buckets *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    self->n_bounds = n;
    self->bounds = PyMem_Calloc((size_t)(n ? n : 1), sizeof(double));
    self->counts = PyMem_Calloc((size_t)n + 1, sizeof(unsigned long long));
    self->sum = 0.0;
    self->min = Py_HUGE_VAL;
    self->max = -Py_HUGE_VAL;
    if (self->bounds == NULL || self->counts == NULL) {
        Py_DECREF(seq);
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double bound = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (bound == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            Py_DECREF(self);
            return NULL;
        }
        if (i > 0 && !(bound > self->bounds[i - 1])) {
            Py_DECREF(seq);
            Py_DECREF(self);
            PyErr_SetString(PyExc_ValueError, "Buckets: bounds must be strictly increasing");
            return NULL;
        }
        self->bounds[i] = bound;
    }
    Py_DECREF(seq);
    return (PyObject *)self;
}

static PyObject *Buckets_add(Buckets *self, PyObject *arg) {
    double value = PyFloat_AsDouble(arg);
    if (value == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (!(value >= 0.0) || value == Py_HUGE_VAL) { /* negative, NaN or infinite: dropped, as the SDK does */
        Py_RETURN_FALSE;
    }
    Py_ssize_t lo = 0, hi = self->n_bounds; /* bisect_left: the number of bounds below the value */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (self->bounds[mid] < value) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    self->counts[lo]++;
    self->count++;
    self->sum += value;
    if (value < self->min) {
        self->min = value;
    }
    if (value > self->max) {
        self->max = value;
    }
    Py_RETURN_TRUE;
}

static PyObject *Buckets_snapshot(Buckets *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *counts = PyTuple_New(self->n_bounds + 1);
    if (counts == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i <= self->n_bounds; i++) {
        PyObject *c = PyLong_FromUnsignedLongLong(self->counts[i]);
        if (c == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyTuple_SET_ITEM(counts, i, c);
    }
    return Py_BuildValue("(KdNdd)", self->count, self->sum, counts, self->min, self->max);
}

static PyMethodDef Buckets_methods[] = {
    {"add", (PyCFunction)Buckets_add, METH_O,
     "add(value) -> bool: count `value` in its bucket (False: negative, NaN or infinite, dropped)."},
    {"snapshot", (PyCFunction)Buckets_snapshot, METH_NOARGS,
     "snapshot() -> (count, sum, bucket counts, min, max), taken atomically."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BucketsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netobs._wire.Buckets",
    .tp_basicsize = sizeof(Buckets),
    .tp_dealloc = (destructor)Buckets_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Buckets(bounds): one histogram series' explicit-bucket counts, count, sum, min and max.",
    .tp_methods = Buckets_methods,
    .tp_new = Buckets_new,
};

static PyMethodDef wire_methods[] = {
    {"encode_spans", (PyCFunction)(void (*)(void))encode_spans, METH_FASTCALL, encode_spans_doc},
    {"encode_result_logs", (PyCFunction)(void (*)(void))encode_result_logs, METH_FASTCALL,
     encode_result_logs_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT,
    "netobs._wire",
    "OTLP protobuf writers for the agent's spans and result log records (see _wire.c).",
    -1,
    wire_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__wire(void) {
    for (int k = 0; k < S_COUNT; k++) {
        span_fields[k] = PyUnicode_InternFromString(span_field_names[k]);
        if (span_fields[k] == NULL) {
            return NULL;
        }
    }
    key_check_name = PyUnicode_InternFromString("netobs.check.name");
    key_check_type = PyUnicode_InternFromString("netobs.check.type");
    key_result_id = PyUnicode_InternFromString("netobs.result.id");
    if (key_check_name == NULL || key_check_type == NULL || key_result_id == NULL) {
        return NULL;
    }
    if (PyType_Ready(&BucketsType) < 0) {
        return NULL;
    }
    if (PyType_Ready(&SpanCoreType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&wire_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&BucketsType);
    if (PyModule_AddObject(module, "Buckets", (PyObject *)&BucketsType) < 0) {
        Py_DECREF(&BucketsType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&SpanCoreType);
    if (PyModule_AddObject(module, "SpanCore", (PyObject *)&SpanCoreType) < 0) {
        Py_DECREF(&SpanCoreType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
