/* replay._frame.InPlaceTemplate: a spooled template read in place, one small object whose
 * spans point into its frame's bytes (which it keeps), instead of a Template's five or so.
 *
 * A pass over the spool makes one of these per request it sends, so what it saves is per
 * request: no copy of the format string, no tuple, no numbers. It answers every attribute
 * and method of replay.template.Template that a worker uses, with the same values, and
 * renders with replay/_fill.h's core straight from the frame. Anything that core leaves to
 * Python, and every attribute read off the hot path, goes through `template()`: the
 * Template this one is, read from the same bytes by the frame reader. */

#include "_fill.h"
#include "_frame.h"

#include <stddef.h>
#include <structmember.h>

PyObject *in_place_iso;

typedef struct {
    PyObject_HEAD
    PyObject *frame; /* the frame's bytes: the spans below point into it */
    PyObject *endpoint, *ack_prefix, *ack_suffix, *read_fallback;
    long long offset_ns, recorded_ms;
    Py_ssize_t start; /* where the template begins in the frame */
    FillPart request, body;
    char has_body, has_read, head;
} InPlace;

/* A part's spans (fmt, then its counts, stamps and reads) into `part`. */
static int part_spans_at(Reader *r, FillPart *part) {
    Py_ssize_t length;
    const char *fmt = span_at(r, &length);
    if (fmt == NULL || need(r, 12) < 0)
        return -1;
    uint32_t slots = u32_at(r), stamps = u32_at(r), reads = u32_at(r);
    Py_ssize_t rest = (Py_ssize_t)stamps * 16 + (Py_ssize_t)reads * 4;
    if (need(r, rest) < 0)
        return -1;
    *part = (FillPart){fmt, length, slots, r->at, stamps, NULL, r->at + (Py_ssize_t)stamps * 16,
                       reads};
    r->at += rest;
    return 0;
}

PyObject *in_place_at(Reader *r, Repeats *last, PyObject *frame) {
    InPlace *self = PyObject_New(InPlace, &InPlaceTemplate);
    if (self == NULL)
        return NULL;
    self->frame = Py_NewRef(frame);
    self->endpoint = self->ack_prefix = self->ack_suffix = self->read_fallback = NULL;
    self->start = r->at - r->start;
    self->has_body = 0;
    if ((self->endpoint = endpoint_at(r, &last->endpoint)) == NULL || need(r, 16) < 0)
        goto fail;
    self->offset_ns = i64_at(r);
    self->recorded_ms = i64_at(r);
    if (part_spans_at(r, &self->request) < 0 || need(r, 1) < 0)
        goto fail;
    if (*r->at++) {
        self->has_body = 1;
        if (part_spans_at(r, &self->body) < 0)
            goto fail;
    }
    if ((self->ack_prefix = repeated_bytes_at(r, &last->ack_prefix)) == NULL ||
        (self->ack_suffix = repeated_bytes_at(r, &last->ack_suffix)) == NULL ||
        (self->read_fallback = repeated_bytes_at(r, &last->read_fallback)) == NULL ||
        need(r, 1) < 0)
        goto fail;
    unsigned char flags = (unsigned char)*r->at++;
    self->has_read = (flags & HAS_READ) != 0;
    self->head = (flags & HEAD) != 0;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static void in_place_dealloc(InPlace *self) {
    Py_XDECREF(self->frame);
    Py_XDECREF(self->endpoint);
    Py_XDECREF(self->ack_prefix);
    Py_XDECREF(self->ack_suffix);
    Py_XDECREF(self->read_fallback);
    PyObject_Free(self);
}

/* The Template this is, read again from its bytes in the frame. */
static PyObject *as_template(InPlace *self, PyObject *Py_UNUSED(ignored)) {
    const char *start = PyBytes_AS_STRING(self->frame);
    Reader r = {start, start + self->start, start + PyBytes_GET_SIZE(self->frame)};
    Repeats last = {NULL, NULL, NULL, NULL};
    PyObject *template = template_at(&r, &last);
    forget(&last);
    return template;
}

/* Everything the compiled render leaves alone: the Template's own render. */
static PyObject *render_by_template(InPlace *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames) {
    PyObject *template = as_template(self, NULL);
    if (template == NULL)
        return NULL;
    PyObject *method = PyObject_GetAttrString(template, "render");
    Py_DECREF(template);
    if (method == NULL)
        return NULL;
    PyObject *out = PyObject_Vectorcall(method, args, nargsf, kwnames);
    Py_DECREF(method);
    return out;
}

/* head, then the body's length and the body, as Template.render joins them. */
static PyObject *joined(PyObject *head, PyObject *body) {
    char length[24];
    int digits = snprintf(length, sizeof length, "%zd\r\n\r\n", PyBytes_GET_SIZE(body));
    Py_ssize_t size = PyBytes_GET_SIZE(head) + digits + PyBytes_GET_SIZE(body);
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    char *to = PyBytes_AS_STRING(out);
    memcpy(to, PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head));
    to += PyBytes_GET_SIZE(head);
    memcpy(to, length, digits);
    memcpy(to + digits, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body));
    return out;
}

/* render(serial, delta_ms, read, iso): as Template.render. */
static PyObject *render(InPlace *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL || nargs != 4 || !PyBytes_CheckExact(args[0]) ||
        !PyLong_CheckExact(args[1]) || !PyBytes_CheckExact(args[2]) ||
        !is_bound(args[3], in_place_iso))
        return render_by_template(self, args, nargsf, kwnames);
    int overflow;
    long long delta = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (delta == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return render_by_template(self, args, nargsf, kwnames);
    }
    const char *serial = PyBytes_AS_STRING(args[0]), *read = PyBytes_AS_STRING(args[2]);
    Py_ssize_t serial_length = PyBytes_GET_SIZE(args[0]), read_length = PyBytes_GET_SIZE(args[2]);
    PyObject *out = fill_part(&self->request, serial, serial_length, (int64_t)delta, overflow,
                              read, read_length);
    if (out != NULL && self->has_body) {
        PyObject *head = out;
        PyObject *body = fill_part(&self->body, serial, serial_length, (int64_t)delta, overflow,
                                   read, read_length);
        out = body != NULL ? joined(head, body) : NULL;
        Py_DECREF(head);
        Py_XDECREF(body);
    }
    if (out != NULL || PyErr_Occurred())
        return out;
    return render_by_template(self, args, nargsf, kwnames);
}

/* trace_id(serial): ack_prefix + serial + ack_suffix. */
static PyObject *trace_id(InPlace *self, PyObject *serial) {
    if (!PyBytes_CheckExact(serial)) {
        PyObject *left = PyNumber_Add(self->ack_prefix, serial);
        PyObject *out = left != NULL ? PyNumber_Add(left, self->ack_suffix) : NULL;
        Py_XDECREF(left);
        return out;
    }
    Py_ssize_t a = PyBytes_GET_SIZE(self->ack_prefix), b = PyBytes_GET_SIZE(serial),
               c = PyBytes_GET_SIZE(self->ack_suffix);
    PyObject *out = PyBytes_FromStringAndSize(NULL, a + b + c);
    if (out == NULL)
        return NULL;
    char *to = PyBytes_AS_STRING(out);
    memcpy(to, PyBytes_AS_STRING(self->ack_prefix), a);
    memcpy(to + a, PyBytes_AS_STRING(serial), b);
    memcpy(to + a + b, PyBytes_AS_STRING(self->ack_suffix), c);
    return out;
}

/* One of the Template's fields (`closure`: its index), for the attributes off the hot path. */
static PyObject *field(InPlace *self, void *closure) {
    PyObject *template = as_template(self, NULL);
    if (template == NULL)
        return NULL;
    PyObject *value = Py_NewRef(PyTuple_GET_ITEM(template, (Py_ssize_t)(intptr_t)closure));
    Py_DECREF(template);
    return value;
}

static PyObject *defines_trace(InPlace *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(PyBytes_GET_SIZE(self->ack_prefix) > 0);
}

/* Iterated, compared and hashed as the Template it is (a frame's reader and tests see one). */
static PyObject *in_place_iter(InPlace *self) {
    PyObject *template = as_template(self, NULL);
    PyObject *out = template != NULL ? PyObject_GetIter(template) : NULL;
    Py_XDECREF(template);
    return out;
}

static PyObject *in_place_compare(InPlace *self, PyObject *other, int op) {
    PyObject *mine = as_template(self, NULL), *theirs = NULL, *out = NULL;
    if (mine == NULL)
        return NULL;
    if (Py_IS_TYPE(other, &InPlaceTemplate))
        theirs = as_template((InPlace *)other, NULL);
    else
        theirs = Py_NewRef(other);
    if (theirs != NULL)
        out = PyObject_RichCompare(mine, theirs, op);
    Py_DECREF(mine);
    Py_XDECREF(theirs);
    return out;
}

static Py_hash_t in_place_hash(InPlace *self) {
    PyObject *template = as_template(self, NULL);
    Py_hash_t out = template != NULL ? PyObject_Hash(template) : -1;
    Py_XDECREF(template);
    return out;
}

static PyObject *in_place_repr(InPlace *self) {
    return PyUnicode_FromFormat("<InPlaceTemplate %R, %zd bytes of format>", self->endpoint,
                                self->request.fmt_length);
}

static PyMethodDef in_place_methods[] = {
    {"render", (PyCFunction)(void (*)(void))render, METH_FASTCALL | METH_KEYWORDS,
     "render(serial, delta_ms, read, iso) -> the request's bytes, as Template.render."},
    {"trace_id", (PyCFunction)trace_id, METH_O,
     "trace_id(serial) -> the minted id of the trace this request ingests."},
    {"template", (PyCFunction)as_template, METH_NOARGS, "The Template this one is."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef in_place_members[] = {
    {"endpoint", T_OBJECT_EX, offsetof(InPlace, endpoint), READONLY, NULL},
    {"offset_ns", T_LONGLONG, offsetof(InPlace, offset_ns), READONLY, NULL},
    {"recorded_ms", T_LONGLONG, offsetof(InPlace, recorded_ms), READONLY, NULL},
    {"ack_prefix", T_OBJECT_EX, offsetof(InPlace, ack_prefix), READONLY, NULL},
    {"ack_suffix", T_OBJECT_EX, offsetof(InPlace, ack_suffix), READONLY, NULL},
    {"read_fallback", T_OBJECT_EX, offsetof(InPlace, read_fallback), READONLY, NULL},
    {"has_read", T_BOOL, offsetof(InPlace, has_read), READONLY, NULL},
    {"head", T_BOOL, offsetof(InPlace, head), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef in_place_getset[] = {
    {"fmt", (getter)field, NULL, NULL, (void *)T_FMT},
    {"slots", (getter)field, NULL, NULL, (void *)T_SLOTS},
    {"stamps", (getter)field, NULL, NULL, (void *)T_STAMPS},
    {"reads", (getter)field, NULL, NULL, (void *)T_READS},
    {"body", (getter)field, NULL, NULL, (void *)T_BODY},
    {"defines_trace", (getter)defines_trace, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject InPlaceTemplate = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "replay._frame.InPlaceTemplate",
    .tp_doc = "A spooled template read in place from its frame: see replay.frame.",
    .tp_basicsize = sizeof(InPlace),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)in_place_dealloc,
    .tp_repr = (reprfunc)in_place_repr,
    .tp_iter = (getiterfunc)in_place_iter,
    .tp_richcompare = (richcmpfunc)in_place_compare,
    .tp_hash = (hashfunc)in_place_hash,
    .tp_methods = in_place_methods,
    .tp_members = in_place_members,
    .tp_getset = in_place_getset,
};
