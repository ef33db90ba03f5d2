/* replay._frame: spool frames packed and read back in C, exactly as replay/frame.py's
 * reference (`packed`, `unpacked`) does in Python; the layout is described there.
 *
 * Reading a frame back is on the core that sends: each template's objects (its bytes,
 * numbers and tuples, the Template and Part themselves) are made straight from the frame's
 * bytes, every length checked against the frame's end first. A frame that is not one is a
 * ValueError saying what is wrong, which replay/frame.py turns into an OSError naming
 * where the frame sits in the spool. */

#include "_frame.h"

#define ENTRY_FIELDS 3 /* replay.pacing.TimelineEntry's: record, offset_ns, gap_ns */
#define ENTRY_BYTES (ENTRY_FIELDS * 8)
/* replay.frame.SMALLEST_ITEM: an entry and a template with every length 0 */
#define SMALLEST_ITEM (ENTRY_BYTES + 4 + 2 * 8 + 4 + 3 * 4 + 1 + 3 * 4 + 1)

PyTypeObject *template_type, *part_type, *entry_type;

static void release(PyObject **items, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++)
        Py_XDECREF(items[k]);
}

/* A new instance of a tuple type (a NamedTuple) holding `items`, whose references it takes. */
static PyObject *named(PyTypeObject *type, PyObject **items, Py_ssize_t n) {
    PyObject *tuple = type->tp_alloc(type, n);
    if (tuple == NULL) {
        release(items, n);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++)
        PyTuple_SET_ITEM(tuple, k, items[k]);
    return tuple;
}

/* A tuple of `count` u32 numbers (the caller checked they are there). */
static PyObject *counts_at(Reader *r, uint32_t count) {
    PyObject *numbers = PyTuple_New(count);
    if (numbers == NULL)
        return NULL;
    for (uint32_t k = 0; k < count; k++) {
        PyObject *value = PyLong_FromUnsignedLong(u32_at(r));
        if (value == NULL) {
            Py_DECREF(numbers);
            return NULL;
        }
        PyTuple_SET_ITEM(numbers, k, value);
    }
    return numbers;
}

/* A part's fields into out[0..3]: fmt, slots, stamps (their bytes, as they are), reads. */
static int part_at(Reader *r, PyObject **out) {
    if ((out[0] = bytes_at(r)) == NULL || need(r, 12) < 0)
        return -1;
    uint32_t slots = u32_at(r), stamps = u32_at(r), reads = u32_at(r);
    if (need(r, (Py_ssize_t)stamps * 16 + (Py_ssize_t)reads * 4) < 0)
        return -1;
    if ((out[1] = PyLong_FromUnsignedLong(slots)) == NULL ||
        (out[2] = PyBytes_FromStringAndSize(r->at, (Py_ssize_t)stamps * 16)) == NULL)
        return -1;
    r->at += (Py_ssize_t)stamps * 16;
    return (out[3] = counts_at(r, reads)) == NULL ? -1 : 0;
}

/* One template; `last` keeps the fields that repeat (most frames have one endpoint). */
PyObject *template_at(Reader *r, Repeats *last) {
    PyObject *f[TEMPLATE_FIELDS] = {NULL};
    if ((f[T_ENDPOINT] = endpoint_at(r, &last->endpoint)) == NULL)
        return NULL;
    if (need(r, 16) < 0)
        goto fail;
    if ((f[T_OFFSET_NS] = PyLong_FromLongLong(i64_at(r))) == NULL ||
        (f[T_RECORDED_MS] = PyLong_FromLongLong(i64_at(r))) == NULL)
        goto fail;
    if (part_at(r, &f[T_FMT]) < 0 || need(r, 1) < 0)
        goto fail;
    if (*r->at++) {
        PyObject *body[PART_FIELDS] = {NULL};
        if (part_at(r, body) < 0) {
            release(body, PART_FIELDS);
            goto fail;
        }
        if ((f[T_BODY] = named(part_type, body, PART_FIELDS)) == NULL)
            goto fail;
    } else {
        f[T_BODY] = Py_NewRef(Py_None);
    }
    if ((f[T_ACK_PREFIX] = repeated_bytes_at(r, &last->ack_prefix)) == NULL ||
        (f[T_ACK_SUFFIX] = repeated_bytes_at(r, &last->ack_suffix)) == NULL ||
        (f[T_READ_FALLBACK] = repeated_bytes_at(r, &last->read_fallback)) == NULL ||
        need(r, 1) < 0)
        goto fail;
    unsigned char flags = (unsigned char)*r->at++;
    f[T_HAS_READ] = Py_NewRef(flags & HAS_READ ? Py_True : Py_False);
    f[T_HEAD] = Py_NewRef(flags & HEAD ? Py_True : Py_False);
    return named(template_type, f, TEMPLATE_FIELDS);
fail:
    release(f, TEMPLATE_FIELDS);
    return NULL;
}

static PyObject *entry_at(Reader *r) {
    PyObject *f[ENTRY_FIELDS] = {NULL};
    if (need(r, ENTRY_BYTES) < 0)
        return NULL;
    for (int k = 0; k < ENTRY_FIELDS; k++) {
        if ((f[k] = PyLong_FromLongLong(i64_at(r))) == NULL) {
            release(f, ENTRY_FIELDS);
            return NULL;
        }
    }
    return named(entry_type, f, ENTRY_FIELDS);
}

static int configured(void) {
    if (template_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "replay._frame used before configure()");
        return 0;
    }
    return 1;
}

static PyObject *unpack(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "unpack(frame, entries, in_place=False)");
        return NULL;
    }
    if (!configured())
        return NULL;
    int entries = PyObject_IsTrue(args[1]);
    int in_place = nargs == 3 ? PyObject_IsTrue(args[2]) : 0;
    if (entries < 0 || in_place < 0)
        return NULL;
    if (in_place && !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "a frame read in place must be bytes");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Reader r = {view.buf, view.buf, (const char *)view.buf + view.len};
    PyObject *out = NULL;
    Repeats last = {NULL, NULL, NULL, NULL};
    if (need(&r, 4) < 0)
        goto done;
    uint32_t count = u32_at(&r);
    if ((Py_ssize_t)count > view.len / SMALLEST_ITEM) {
        PyErr_Format(PyExc_ValueError, "%u templates cannot fit in %zd bytes", count, view.len);
        goto done;
    }
    if ((out = PyList_New(count)) == NULL)
        goto done;
    for (uint32_t k = 0; k < count; k++) {
        PyObject *entry = NULL;
        if (entries) {
            if ((entry = entry_at(&r)) == NULL)
                goto fail;
        } else if (need(&r, ENTRY_BYTES) < 0) {
            goto fail;
        } else {
            r.at += ENTRY_BYTES;
        }
        PyObject *template = in_place ? in_place_at(&r, &last, args[0]) : template_at(&r, &last);
        if (template == NULL) {
            Py_XDECREF(entry);
            goto fail;
        }
        PyObject *item = template;
        if (entries && (item = PyTuple_Pack(2, entry, template)) != NULL) {
            Py_DECREF(entry);
            Py_DECREF(template);
        } else if (entries) {
            Py_DECREF(entry);
            Py_DECREF(template);
            goto fail;
        }
        PyList_SET_ITEM(out, k, item);
    }
    if (r.at != r.end) {
        PyErr_Format(PyExc_ValueError, "%zd bytes after the last template",
                     (Py_ssize_t)(r.end - r.at));
        goto fail;
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    forget(&last);
    PyBuffer_Release(&view);
    return out;
}

/* ---- packing ---- */

typedef struct {
    char *at; /* NULL while measuring: only `size` counts */
    Py_ssize_t size;
} Writer;

static void put(Writer *w, const void *data, Py_ssize_t length) {
    if (w->at != NULL) {
        memcpy(w->at, data, length);
        w->at += length;
    }
    w->size += length;
}

static void put_u32(Writer *w, uint32_t value) { put(w, &value, 4); }
static void put_i64(Writer *w, int64_t value) { put(w, &value, 8); }

static int put_u32_of(Writer *w, PyObject *number, const char *what) {
    unsigned long value = PyLong_Check(number) ? PyLong_AsUnsignedLong(number) : (unsigned long)-1;
    if (value > UINT32_MAX) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s is not a count from 0 to 2**32", what);
        return -1;
    }
    put_u32(w, (uint32_t)value);
    return 0;
}

static int put_i64_of(Writer *w, PyObject *number, const char *what) {
    int64_t value = PyLong_Check(number) ? PyLong_AsLongLong(number) : -1;
    if (value == -1 && (!PyLong_Check(number) || PyErr_Occurred())) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s is not a 64-bit integer", what);
        return -1;
    }
    put_i64(w, value);
    return 0;
}

static int put_bytes(Writer *w, PyObject *data, const char *what) {
    if (!PyBytes_Check(data) || PyBytes_GET_SIZE(data) > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s is not bytes under 4 GiB", what);
        return -1;
    }
    put_u32(w, (uint32_t)PyBytes_GET_SIZE(data));
    put(w, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    return 0;
}

static int put_part(Writer *w, PyObject *fmt, PyObject *slots, PyObject *stamps, PyObject *reads) {
    if (put_bytes(w, fmt, "fmt") < 0 || put_u32_of(w, slots, "slots") < 0)
        return -1;
    if (!PyBytes_Check(stamps) || PyBytes_GET_SIZE(stamps) % 16 != 0 ||
        PyBytes_GET_SIZE(stamps) / 16 > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "stamps are not (hole, ms) pairs");
        return -1;
    }
    if (!PyTuple_Check(reads) || PyTuple_GET_SIZE(reads) > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "reads are not a tuple");
        return -1;
    }
    put_u32(w, (uint32_t)(PyBytes_GET_SIZE(stamps) / 16));
    put_u32(w, (uint32_t)PyTuple_GET_SIZE(reads));
    put(w, PyBytes_AS_STRING(stamps), PyBytes_GET_SIZE(stamps));
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(reads); k++)
        if (put_u32_of(w, PyTuple_GET_ITEM(reads, k), "a read") < 0)
            return -1;
    return 0;
}

static int put_template(Writer *w, PyObject *entry, PyObject *t) {
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != ENTRY_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "an entry is not a TimelineEntry");
        return -1;
    }
    for (int k = 0; k < ENTRY_FIELDS; k++)
        if (put_i64_of(w, PyTuple_GET_ITEM(entry, k), "an entry's field") < 0)
            return -1;
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != TEMPLATE_FIELDS ||
        !PyUnicode_Check(PyTuple_GET_ITEM(t, T_ENDPOINT))) {
        PyErr_SetString(PyExc_ValueError, "a template is not a Template");
        return -1;
    }
    Py_ssize_t length;
    const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(t, T_ENDPOINT), &length);
    if (name == NULL)
        return -1;
    put_u32(w, (uint32_t)length);
    put(w, name, length);
    if (put_i64_of(w, PyTuple_GET_ITEM(t, T_OFFSET_NS), "offset_ns") < 0 ||
        put_i64_of(w, PyTuple_GET_ITEM(t, T_RECORDED_MS), "recorded_ms") < 0 ||
        put_part(w, PyTuple_GET_ITEM(t, T_FMT), PyTuple_GET_ITEM(t, T_SLOTS),
                 PyTuple_GET_ITEM(t, T_STAMPS), PyTuple_GET_ITEM(t, T_READS)) < 0)
        return -1;
    PyObject *body = PyTuple_GET_ITEM(t, T_BODY);
    unsigned char has_body = body != Py_None;
    put(w, &has_body, 1);
    if (has_body) {
        if (!PyTuple_Check(body) || PyTuple_GET_SIZE(body) != PART_FIELDS) {
            PyErr_SetString(PyExc_ValueError, "a body is not a Part");
            return -1;
        }
        if (put_part(w, PyTuple_GET_ITEM(body, 0), PyTuple_GET_ITEM(body, 1),
                     PyTuple_GET_ITEM(body, 2), PyTuple_GET_ITEM(body, 3)) < 0)
            return -1;
    }
    if (put_bytes(w, PyTuple_GET_ITEM(t, T_ACK_PREFIX), "ack_prefix") < 0 ||
        put_bytes(w, PyTuple_GET_ITEM(t, T_ACK_SUFFIX), "ack_suffix") < 0 ||
        put_bytes(w, PyTuple_GET_ITEM(t, T_READ_FALLBACK), "read_fallback") < 0)
        return -1;
    int has_read = PyObject_IsTrue(PyTuple_GET_ITEM(t, T_HAS_READ));
    int head = PyObject_IsTrue(PyTuple_GET_ITEM(t, T_HEAD));
    if (has_read < 0 || head < 0)
        return -1;
    unsigned char flags = (unsigned char)((has_read ? HAS_READ : 0) | (head ? HEAD : 0));
    put(w, &flags, 1);
    return 0;
}

static int put_frame(Writer *w, PyObject *entries, PyObject *templates) {
    Py_ssize_t count = PySequence_Fast_GET_SIZE(templates);
    put_u32(w, (uint32_t)count);
    for (Py_ssize_t k = 0; k < count; k++)
        if (put_template(w, PySequence_Fast_GET_ITEM(entries, k),
                         PySequence_Fast_GET_ITEM(templates, k)) < 0)
            return -1;
    return 0;
}

static PyObject *pack(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "pack(entries, templates)");
        return NULL;
    }
    PyObject *out = NULL;
    PyObject *entries = PySequence_Fast(args[0], "entries are not a sequence");
    PyObject *templates = entries ? PySequence_Fast(args[1], "templates are not a sequence") : NULL;
    if (templates == NULL)
        goto done;
    if (PySequence_Fast_GET_SIZE(entries) != PySequence_Fast_GET_SIZE(templates) ||
        PySequence_Fast_GET_SIZE(templates) > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a frame needs as many entries as templates");
        goto done;
    }
    Writer measure = {NULL, 0};
    if (put_frame(&measure, entries, templates) < 0)
        goto done;
    if ((out = PyBytes_FromStringAndSize(NULL, measure.size)) == NULL)
        goto done;
    Writer fill = {PyBytes_AS_STRING(out), 0};
    if (put_frame(&fill, entries, templates) < 0 || fill.size != measure.size) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "a frame changed while it was packed");
        Py_CLEAR(out);
    }
done:
    Py_XDECREF(entries);
    Py_XDECREF(templates);
    return out;
}

static PyObject *configure(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyFunction_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "configure(Template, Part, TimelineEntry, Stamps.iso)");
        return NULL;
    }
    for (int k = 0; k < 3; k++) {
        if (!PyType_Check(args[k]) || !PyType_IsSubtype((PyTypeObject *)args[k], &PyTuple_Type)) {
            PyErr_SetString(PyExc_TypeError, "configure takes three tuple types");
            return NULL;
        }
    }
    Py_XSETREF(template_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(part_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(entry_type, (PyTypeObject *)Py_NewRef(args[2]));
    Py_XSETREF(in_place_iso, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"unpack", (PyCFunction)(void (*)(void))unpack, METH_FASTCALL,
     "unpack(frame, entries, in_place=False) -> the frame's (TimelineEntry, Template) pairs, "
     "or its Templates alone (InPlaceTemplates, in place); ValueError for bytes that are not "
     "a frame."},
    {"pack", (PyCFunction)(void (*)(void))pack, METH_FASTCALL,
     "pack(entries, templates) -> the frame of these TimelineEntries and Templates."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(Template, Part, TimelineEntry, Stamps.iso): the types unpack makes, and the "
     "iso whose form an InPlaceTemplate renders itself."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "replay._frame",
    "Spool frames packed and read back in C (replay/frame.py's layout).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__frame(void) {
    if (PyType_Ready(&InPlaceTemplate) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && PyModule_AddObjectRef(module, "InPlaceTemplate",
                                                (PyObject *)&InPlaceTemplate) < 0)
        Py_CLEAR(module);
    return module;
}
