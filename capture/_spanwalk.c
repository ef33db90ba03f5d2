/* capture._spanwalk: the id and timestamp spans of a JSON body in one pass, exactly as
 * capture/spans.py's reference walk (`walked_body_spans`) finds them, or None where this
 * pass cannot be sure of that answer (the caller then takes the Python path).
 *
 * One loop validates the body as JSON (a strict subset of what json.loads reads: strict
 * UTF-8, no NaN or Infinity, no integer json.loads could refuse for its length, nesting up
 * to MAX_DEPTH), keeps the key above each open container, and notes every string value
 * under a key that names a kind. The kinds of "id" values are settled at the end, when it
 * is known whether the document is a batch and what type each batch event has. Then the
 * walk's rules over bytes: ids replay cannot mint are not marked, further occurrences of
 * the trace ids defined become trace references, and of overlapping spans the first is
 * kept.
 *
 * The key names come from capture/spans.py (`configure`); the structure the kinds depend
 * on ("batch", "observations", "body", "type") is spans._id_kind's and _event_kinds'. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "_json_bytes.h"

/* capture.corpus_format.IdKind's values */
enum { TRACE = 0, TRACE_REF = 1, OBSERVATION = 2, OBSERVATION_REF = 3, TIMESTAMP = 4, PROJECT = 5 };
enum { NO_KIND = -1 };

#define MAX_DEPTH 512
#define MIN_ID_LENGTH 16 /* capture.spans.MIN_ID_LENGTH and TAG_DIGITS: what replay can mint */
#define TAG_DIGITS 12
#define MAX_KEYS 64

/* What the key above a value is, for the rules: a kind, or one of the structural keys. */
enum { K_OTHER = -1, K_ID = -2, K_BATCH = -3, K_OBSERVATIONS = -4, K_BODY = -5, K_TYPE = -6 };

typedef struct {
    char *name;
    Py_ssize_t length;
    int kind;
} KeyName;

static KeyName key_names[MAX_KEYS];
static int key_count = 0;

/* Where an "id" value sits, for spans._id_kind. */
enum { AT_NONE, AT_TOP, AT_OBSERVATION, AT_EVENT, AT_EVENT_BODY };

typedef struct {
    Py_ssize_t start, length;
    int kind;  /* a kind, or NO_KIND for an id until its place is settled */
    int place; /* an id's place */
    Py_ssize_t event;
} Found;

typedef struct {
    Py_ssize_t start, length;
    int kind;
} Span;

typedef struct {
    char is_object;
    int key;          /* the class of the current key (objects) */
    Py_ssize_t index; /* the current index (arrays) */
} Level;

typedef struct {
    void *items;
    Py_ssize_t count, capacity, size;
} Vec;

static int vec_push(Vec *vec, const void *item) {
    if (vec->count == vec->capacity) {
        Py_ssize_t capacity = vec->capacity ? vec->capacity * 2 : 32;
        void *items = PyMem_Realloc(vec->items, (size_t)(capacity * vec->size));
        if (items == NULL)
            return -1;
        vec->items = items;
        vec->capacity = capacity;
    }
    memcpy((char *)vec->items + vec->count * vec->size, item, (size_t)vec->size);
    vec->count++;
    return 0;
}

/* Event types of a batch: for each event index, the kind of its body's id, NO_KIND when
 * the event has no string "type" (yet). */
static int set_event_kind(Vec *events, Py_ssize_t index, int kind) {
    int none = NO_KIND;
    while (events->count <= index)
        if (vec_push(events, &none) < 0)
            return -1;
    ((int *)events->items)[index] = kind;
    return 0;
}

static int key_class(const unsigned char *name, Py_ssize_t length) {
    for (int k = 0; k < key_count; k++)
        if (key_names[k].length == length && memcmp(key_names[k].name, name, (size_t)length) == 0)
            return key_names[k].kind;
    switch (length) {
    case 2:
        return memcmp(name, "id", 2) == 0 ? K_ID : K_OTHER;
    case 4:
        if (memcmp(name, "body", 4) == 0)
            return K_BODY;
        return memcmp(name, "type", 4) == 0 ? K_TYPE : K_OTHER;
    case 5:
        return memcmp(name, "batch", 5) == 0 ? K_BATCH : K_OTHER;
    case 12:
        return memcmp(name, "observations", 12) == 0 ? K_OBSERVATIONS : K_OTHER;
    }
    return K_OTHER;
}

/* Exactly 24 bytes of ISO time: dddd-dd-ddTdd:dd:dd.dddZ (spans._ISO24). */
static int is_iso24(const unsigned char *s, Py_ssize_t length) {
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (length != 24)
        return 0;
    for (int i = 0; i < 24; i++)
        if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != (unsigned char)shape[i])
            return 0;
    return 1;
}

/* spans.mintable over a value's bytes (holding no backslash, so they are its text). */
static int mintable(const unsigned char *s, Py_ssize_t length) {
    Py_ssize_t alnum = 0;
    if (length < MIN_ID_LENGTH)
        return 0;
    for (Py_ssize_t i = 0; i < length; i++)
        if (s[i] >= 0x80)
            return 0;
    for (Py_ssize_t i = length - TAG_DIGITS; i < length; i++)
        if (!is_alnum(s[i]))
            return 0;
    if (is_alnum(s[0]) && is_alnum(s[1]) && is_alnum(s[2]) && is_alnum(s[3]))
        return 1;
    for (Py_ssize_t i = 0; i < length - TAG_DIGITS; i++)
        alnum += is_alnum(s[i]);
    return alnum >= 4;
}

/* The kind of a batch event's body id from its type (spans._event_kinds). */
static int event_body_kind(const unsigned char *s, Py_ssize_t length) {
    int update = length >= 7 && memcmp(s + length - 7, "-update", 7) == 0;
    if (length >= 6 && memcmp(s, "trace-", 6) == 0)
        return update ? TRACE_REF : TRACE;
    return update ? OBSERVATION_REF : OBSERVATION;
}

static int compare_spans(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->length != y->length)
        return x->length < y->length ? -1 : 1;
    return (x->kind > y->kind) - (x->kind < y->kind);
}

typedef struct {
    const unsigned char *body;
    Py_ssize_t length;
} Needle;

static int compare_needles(const void *a, const void *b) {
    const Needle *x = a, *y = b;
    Py_ssize_t shorter = x->length < y->length ? x->length : y->length;
    int order = memcmp(x->body, y->body, (size_t)shorter);
    if (order)
        return order;
    return (x->length > y->length) - (x->length < y->length);
}

/* Whether a span of `spans` (sorted by start) starts at `at`. */
static int starts_at(const Span *spans, Py_ssize_t count, Py_ssize_t at) {
    Py_ssize_t low = 0, high = count;
    while (low < high) {
        Py_ssize_t mid = (low + high) / 2;
        if (spans[mid].start < at)
            low = mid + 1;
        else
            high = mid;
    }
    return low < count && spans[low].start == at;
}

static inline int is_regex_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static inline int is_project_char(unsigned char c) {
    return is_alnum(c) || c == '_' || c == '.' || c == ':' || c == '-';
}

/* The project ids a GraphQL document names, as spanscan.GQL_PROJECT finds them:
 * projectId, spaces, a colon, spaces, then an escaped quote, the id, an escaped quote. */
static int graphql_projects(const unsigned char *b, Py_ssize_t n, Vec *spans) {
    Py_ssize_t at = 0;
    for (;;) {
        const unsigned char *hit = memmem(b + at, (size_t)(n - at), "projectId", 9);
        if (hit == NULL)
            return 0;
        Py_ssize_t i = hit - b + 9, start;
        at = hit - b + 1;
        while (i < n && is_regex_space(b[i]))
            i++;
        if (i >= n || b[i] != ':')
            continue;
        i++;
        while (i < n && is_regex_space(b[i]))
            i++;
        if (i + 1 >= n || b[i] != '\\' || b[i + 1] != '"')
            continue;
        start = i += 2;
        while (i < n && is_project_char(b[i]))
            i++;
        if (i == start || i + 1 >= n || b[i] != '\\' || b[i + 1] != '"')
            continue;
        Span span = {start, i - start, PROJECT};
        if (vec_push(spans, &span) < 0)
            return -1;
        at = i + 2;
    }
}

typedef enum { ANSWER, REFUSE, FAIL } Outcome;

/* The walk: validates the body and collects the values under named keys into `found`,
 * the batch events' kinds into `events`. */
static Outcome walk(const unsigned char *b, Py_ssize_t n, Vec *found, Vec *events,
                    int *is_batch) {
    Level stack[MAX_DEPTH + 1];
    int depth = 0, batches = 0;
    Py_ssize_t p = 0;
    *is_batch = 0;
    if (n < 2 || (b[0] != '{' && b[0] != '['))
        return REFUSE;
    for (;;) {
        /* a value starts at p (after any space) */
        p = skip_space(b, n, p);
        if (p >= n)
            return REFUSE;
        unsigned char c = b[p];
        Level *top = depth ? &stack[depth - 1] : NULL;
        int key = top && top->is_object ? top->key : K_OTHER;
        /* a batch event's type: keys ("batch", i, "type") */
        int event_type = key == K_TYPE && depth == 3 && stack[0].is_object &&
                         stack[0].key == K_BATCH && !stack[1].is_object;
        if (c == '{' || c == '[') {
            if (event_type && set_event_kind(events, stack[1].index, NO_KIND) < 0)
                return FAIL;
            if (depth == MAX_DEPTH)
                return REFUSE;
            stack[depth].is_object = c == '{';
            stack[depth].key = K_OTHER;
            stack[depth].index = 0;
            depth++;
            p++;
            p = skip_space(b, n, p);
            if (p >= n)
                return REFUSE;
            if (c == '{') {
                if (b[p] == '}') {
                    p++;
                    depth--;
                    goto after_value;
                }
                goto read_key;
            }
            if (b[p] == ']') {
                p++;
                depth--;
                goto after_value;
            }
            continue;
        }
        if (c == '"') {
            Py_ssize_t start = p + 1;
            int escaped;
            if (!read_string(b, n, &p, &escaped))
                return REFUSE;
            Py_ssize_t length = p - 1 - start;
            if (event_type) {
                if (escaped)
                    return REFUSE;
                if (set_event_kind(events, stack[1].index, event_body_kind(b + start, length)) <
                    0)
                    return FAIL;
            }
            if (key >= 0 || key == K_ID) {
                if (!escaped && length > 0 && (key != TIMESTAMP || is_iso24(b + start, length))) {
                    Found item = {start, length, key, AT_NONE, 0};
                    if (key == K_ID) {
                        item.kind = NO_KIND;
                        if (depth == 1)
                            item.place = AT_TOP;
                        else if (depth == 3 && stack[0].is_object &&
                                 stack[0].key == K_OBSERVATIONS)
                            item.place = AT_OBSERVATION;
                        else if ((depth == 3 || depth == 4) && stack[0].is_object &&
                                 stack[0].key == K_BATCH && !stack[1].is_object) {
                            item.event = stack[1].index;
                            if (depth == 3)
                                item.place = AT_EVENT;
                            else if (stack[2].is_object && stack[2].key == K_BODY)
                                item.place = AT_EVENT_BODY;
                        }
                    }
                    if (vec_push(found, &item) < 0)
                        return FAIL;
                }
            }
            goto after_value;
        }
        if (event_type && set_event_kind(events, stack[1].index, NO_KIND) < 0)
            return FAIL;
        if (c == 't' && n - p >= 4 && memcmp(b + p, "true", 4) == 0)
            p += 4;
        else if (c == 'f' && n - p >= 5 && memcmp(b + p, "false", 5) == 0)
            p += 5;
        else if (c == 'n' && n - p >= 4 && memcmp(b + p, "null", 4) == 0)
            p += 4;
        else if (!read_number(b, n, &p))
            return REFUSE;

    after_value:
        p = skip_space(b, n, p);
        if (depth == 0)
            return p == n ? ANSWER : REFUSE;
        if (p >= n)
            return REFUSE;
        top = &stack[depth - 1];
        if (b[p] == ',') {
            p++;
            if (top->is_object) {
                p = skip_space(b, n, p);
                goto read_key;
            }
            top->index++;
            continue;
        }
        if (b[p] == (top->is_object ? '}' : ']')) {
            p++;
            depth--;
            goto after_value;
        }
        return REFUSE;

    read_key:
        if (p >= n || b[p] != '"')
            return REFUSE;
        {
            Py_ssize_t start = p + 1;
            int escaped;
            if (!read_string(b, n, &p, &escaped) || escaped)
                return REFUSE;
            top = &stack[depth - 1];
            top->key = key_class(b + start, p - 1 - start);
            if (depth == 1 && top->key == K_BATCH) {
                if (++batches > 1)
                    return REFUSE;
                *is_batch = 1;
            }
        }
        p = skip_space(b, n, p);
        if (p >= n || b[p] != ':')
            return REFUSE;
        p++;
    }
}

/* Settles each id's kind (spans._id_kind) now that the document's shape is known. */
static void settle_ids(Found *found, Py_ssize_t count, const int *events, Py_ssize_t nevents,
                       int is_batch) {
    for (Py_ssize_t i = 0; i < count; i++) {
        Found *item = &found[i];
        if (item->kind != NO_KIND)
            continue;
        int body_kind = NO_KIND;
        if (is_batch && (item->place == AT_EVENT || item->place == AT_EVENT_BODY) &&
            item->event < nevents)
            body_kind = events[item->event];
        if (!is_batch && item->place == AT_TOP)
            item->kind = TRACE;
        else if (!is_batch && item->place == AT_OBSERVATION)
            item->kind = OBSERVATION;
        else if (item->place == AT_EVENT && body_kind != NO_KIND)
            item->kind = OBSERVATION;
        else if (item->place == AT_EVENT_BODY)
            item->kind = body_kind;
    }
}

static inline int is_id_kind(int kind) {
    return kind == TRACE || kind == TRACE_REF || kind == OBSERVATION || kind == OBSERVATION_REF;
}

/* The spans from what the walk found (spans._body_spans after its loop over the strings):
 * into `spans`, sorted and disjoint; the trace's place into *trace. */
static Outcome spans_of(const unsigned char *b, Py_ssize_t n, const Found *found,
                        Py_ssize_t count, Vec *spans, Py_ssize_t *trace) {
    Vec kept = {NULL, 0, 0, sizeof(Span)};
    Vec needles = {NULL, 0, 0, sizeof(Needle)};
    Outcome outcome = FAIL;
    trace[0] = trace[1] = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        const Found *item = &found[i];
        if (item->kind == NO_KIND)
            continue;
        if (is_id_kind(item->kind) && !mintable(b + item->start, item->length))
            continue;
        Span span = {item->start, item->length, item->kind};
        if (vec_push(&kept, &span) < 0)
            goto done;
        if (item->kind == TRACE) {
            Needle needle = {b + item->start, item->length};
            if (vec_push(&needles, &needle) < 0)
                goto done;
            if (trace[0] < 0) {
                trace[0] = item->start;
                trace[1] = item->start + item->length;
            }
        }
    }
    for (Py_ssize_t i = 0; trace[0] < 0 && i < count; i++)
        if (found[i].kind == TRACE_REF) {
            trace[0] = found[i].start;
            trace[1] = found[i].start + found[i].length;
        }
    Span *taken = kept.items;
    Py_ssize_t ntaken = kept.count;
    for (Py_ssize_t i = 0; i < ntaken; i++)
        if (vec_push(spans, &taken[i]) < 0)
            goto done;
    if (needles.count > 1)
        qsort(needles.items, (size_t)needles.count, sizeof(Needle), compare_needles);
    Needle *all = needles.items;
    for (Py_ssize_t i = 0; i < needles.count; i++) {
        if (i && compare_needles(&all[i - 1], &all[i]) == 0)
            continue;
        const unsigned char *needle = all[i].body;
        Py_ssize_t length = all[i].length, at = 0;
        for (;;) {
            const unsigned char *hit =
                memmem(b + at, (size_t)(n - at), needle, (size_t)length);
            if (hit == NULL)
                break;
            at = hit - b;
            if (!starts_at(taken, ntaken, at) && (at == 0 || b[at - 1] != '\\')) {
                Span span = {at, length, TRACE_REF};
                if (vec_push(spans, &span) < 0)
                    goto done;
            }
            at += length;
        }
    }
    if (memmem(b, (size_t)n, "projectId", 9) != NULL && memmem(b, (size_t)n, "\\\"", 2) != NULL)
        if (graphql_projects(b, n, spans) < 0)
            goto done;
    Span *out = spans->items;
    if (spans->count > 1)
        qsort(out, (size_t)spans->count, sizeof(Span), compare_spans);
    Py_ssize_t kept_count = 0, end = -1;
    for (Py_ssize_t i = 0; i < spans->count; i++)
        if (out[i].start >= end) {
            out[kept_count++] = out[i];
            end = out[i].start + out[i].length;
        }
    spans->count = kept_count;
    outcome = ANSWER;
done:
    PyMem_Free(kept.items);
    PyMem_Free(needles.items);
    return outcome;
}

static PyObject *result(const Span *spans, Py_ssize_t count, const Py_ssize_t *trace) {
    PyObject *tuple = PyTuple_New(count);
    if (tuple == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *span = Py_BuildValue("(nni)", spans[i].start, spans[i].length, spans[i].kind);
        if (span == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, i, span);
    }
    return Py_BuildValue("(Nnn)", tuple, trace[0], trace[1]);
}

static PyObject *body_spans(PyObject *module, PyObject *arg) {
    Py_buffer view;
    Vec found = {NULL, 0, 0, sizeof(Found)};
    Vec events = {NULL, 0, 0, sizeof(int)};
    Vec spans = {NULL, 0, 0, sizeof(Span)};
    PyObject *out = NULL;
    Py_ssize_t trace[2];
    int is_batch;
    (void)module;
    if (key_count == 0) /* not configured: no answer could be exact */
        Py_RETURN_NONE;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *b = view.buf;
    Py_ssize_t n = view.len;
    Outcome outcome;
    outcome = walk(b, n, &found, &events, &is_batch);
    if (outcome == ANSWER) {
        settle_ids(found.items, found.count, events.items, events.count, is_batch);
        outcome = spans_of(b, n, found.items, found.count, &spans, trace);
    }
    if (outcome == ANSWER)
        out = result(spans.items, spans.count, trace);
    else if (outcome == REFUSE)
        out = Py_NewRef(Py_None);
    else
        PyErr_NoMemory();
    PyMem_Free(found.items);
    PyMem_Free(events.items);
    PyMem_Free(spans.items);
    PyBuffer_Release(&view);
    return out;
}

static PyObject *configure(PyObject *module, PyObject *arg) {
    PyObject *items = PySequence_Fast(arg, "configure takes a sequence of (bytes, kind)");
    (void)module;
    if (items == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    if (count > MAX_KEYS) {
        Py_DECREF(items);
        return PyErr_Format(PyExc_ValueError, "at most %d key names", MAX_KEYS);
    }
    for (int k = 0; k < key_count; k++)
        PyMem_Free(key_names[k].name);
    key_count = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *name;
        Py_ssize_t length;
        int kind;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(items, i), "y#i", &name, &length, &kind))
            goto fail;
        if (kind < 0 || kind > 5) {
            PyErr_Format(PyExc_ValueError, "no kind %d", kind);
            goto fail;
        }
        char *copy = PyMem_Malloc((size_t)length + 1);
        if (copy == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        memcpy(copy, name, (size_t)length);
        key_names[key_count].name = copy;
        key_names[key_count].length = length;
        key_names[key_count].kind = kind;
        key_count++;
    }
    Py_DECREF(items);
    Py_RETURN_NONE;
fail:
    Py_DECREF(items);
    return NULL;
}

static PyMethodDef methods[] = {
    {"body_spans", body_spans, METH_O,
     "body_spans(body) -> (spans, trace_start, trace_end), or None where it cannot answer "
     "exactly as capture.spans.walked_body_spans would."},
    {"configure", configure, METH_O,
     "configure(keys): the (name, kind) of every key but \"id\" whose string values are "
     "spans."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "capture._spanwalk",
    "The spans of a JSON body in one compiled pass (capture/spans.py's walk).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__spanwalk(void) { return PyModule_Create(&module_def); }
