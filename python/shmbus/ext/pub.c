/*
 * pub.c - the Publisher type (send bytes, loan a slot) and the Loan: a
 * writable slot buffer that is published when its `with` block ends.
 */
#include "shmbus_py.h"

static void loan_finish(PyObject *self);

bool py_pub_open(PyPub *p)
{
	if (p->pub)
		return true;
	py_raise_msg(SHMBUS_ESTATE, NULL, "the publisher is closed");
	return false;
}

static int pub_init(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"bus", "topic", "type_name", "schema", "max_message_size",
				 "slot_count", "history", "integrity", "grow", NULL};
	PyPub *p = (PyPub *)self;
	PyObject *bus;
	const char *topic, *type_name = NULL;
	Py_buffer schema = {0};
	unsigned int max_size = 0, slots = 0, history = 0;
	int integrity = 0, grow = 0;

	if (p->pub) {
		PyErr_SetString(PyExc_RuntimeError, "Publisher.__init__ called twice");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O!s|zz*IIIpp:Publisher", kwlist, &PyBus_Type,
					 &bus, &topic, &type_name, &schema, &max_size, &slots,
					 &history, &integrity, &grow))
		return -1;
	if (!py_bus_open((PyBus *)bus)) {
		PyBuffer_Release(&schema);
		return -1;
	}
	struct shmbus_topic_options t;
	shmbus_topic_options_init(&t);
	t.type_name = type_name;
	t.schema = schema.buf;
	t.schema_size = schema.buf ? (size_t)schema.len : 0;
	t.max_message_size = max_size;
	t.slot_count = slots;
	t.history = history;
	t.flags = integrity ? SHMBUS_TOPIC_INTEGRITY : 0;
	struct shmbus_pub_options o;
	shmbus_pub_options_init(&o);
	o.flags = grow ? SHMBUS_PUB_GROW : 0;
	shmbus_pub *pub = NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shmbus_pub_open(((PyBus *)bus)->bus, topic, &t, &o, &pub);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&schema);
	if (rc) {
		py_raise(rc, "publisher");
		return -1;
	}
	p->pub = pub;
	p->bus = (PyBus *)Py_NewRef(bus);
	p->bus->children++;
	return 0;
}

static PyObject *pub_close(PyObject *self, PyObject *unused)
{
	PyPub *p = (PyPub *)self;
	(void)unused;
	if (!p->pub)
		Py_RETURN_NONE;
	if (p->loan)
		return py_raise_msg(SHMBUS_ESTATE, py_exc_buffer_in_use,
				    "a loan of this publisher is still open (or buffers over it "
				    "are alive)");
	shmbus_pub_close(p->pub);
	p->pub = NULL;
	p->bus->children--;
	Py_CLEAR(p->bus);
	Py_RETURN_NONE;
}

static void pub_dealloc(PyObject *self)
{
	PyPub *p = (PyPub *)self;
	/* An open loan holds a reference to us: none is open here. */
	if (p->pub) {
		shmbus_pub_close(p->pub);
		p->bus->children--;
	}
	Py_XDECREF(p->bus);
	Py_TYPE(self)->tp_free(self);
}

static PyObject *pub_send(PyObject *self, PyObject *arg)
{
	PyPub *p = (PyPub *)self;
	Py_buffer b;
	if (!py_pub_open(p) || PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	uint64_t seq = 0;
	int rc;
	if (b.len > 65536) {
		/* A large copy: let other threads run meanwhile. */
		Py_BEGIN_ALLOW_THREADS
		rc = shmbus_pub_send(p->pub, b.buf, (size_t)b.len, &seq);
		Py_END_ALLOW_THREADS
	} else {
		rc = shmbus_pub_send(p->pub, b.buf, (size_t)b.len, &seq);
	}
	PyBuffer_Release(&b);
	if (rc)
		return py_raise(rc, "send");
	return PyLong_FromUnsignedLongLong(seq);
}

static PyObject *pub_loan(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"size", NULL};
	PyPub *p = (PyPub *)self;
	PyObject *size_obj = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:loan", kwlist, &size_obj) ||
	    !py_pub_open(p))
		return NULL;
	if (p->loan)
		return py_raise_msg(SHMBUS_ESTATE, NULL, "a loan of this publisher is still open");
	void *buf;
	size_t cap;
	int rc = shmbus_pub_loan(p->pub, &buf, &cap);
	if (rc)
		return py_raise(rc, "loan");
	size_t size = cap;
	if (size_obj != Py_None) {
		Py_ssize_t s = PyLong_AsSsize_t(size_obj);
		if (s < 0 || (size_t)s > cap) {
			shmbus_pub_discard(p->pub);
			if (s == -1 && PyErr_Occurred())
				return NULL;
			return py_raise_msg(SHMBUS_EMSGSIZE, NULL,
					    "loan of %zd bytes: the topic takes at most %zu", s, cap);
		}
		size = (size_t)s;
	}
	PyLoan *l = PyObject_New(PyLoan, &PyLoan_Type);
	if (!l) {
		shmbus_pub_discard(p->pub);
		return NULL;
	}
	l->buf = (struct slotbuf){.data = buf, .len = (Py_ssize_t)size, .readonly = false};
	l->buf.finish = loan_finish;
	l->pub = (PyPub *)Py_NewRef(self);
	l->capacity = cap;
	l->publish = false;
	l->result = 0;
	l->seq = 0;
	p->loan = (PyObject *)l; /* borrowed: cleared by finish */
	return (PyObject *)l;
}

static PyObject *pub_stats(PyObject *self, PyObject *unused)
{
	PyPub *p = (PyPub *)self;
	(void)unused;
	if (!py_pub_open(p))
		return NULL;
	struct shmbus_pub_stats s;
	shmbus_pub_stats(p->pub, &s);
	return Py_BuildValue("{sKsKsKsI}", "published", (unsigned long long)s.published,
			     "superseded", (unsigned long long)s.superseded, "skipped",
			     (unsigned long long)s.skipped, "publisher_id", s.publisher_id);
}

static PyObject *pub_get(PyObject *self, void *closure)
{
	PyPub *p = (PyPub *)self;
	const char *which = closure;
	if (which[0] == 'c')
		return PyBool_FromLong(p->pub == NULL);
	if (!py_pub_open(p))
		return NULL;
	switch (which[0]) {
	case 't':
		return PyUnicode_FromString(which[1] == 'y' ? shmbus_pub_type_name(p->pub)
							    : shmbus_pub_topic(p->pub));
	case 'm':
		return PyLong_FromSize_t(shmbus_pub_max_message_size(p->pub));
	default:
		return PyLong_FromUnsignedLong(0);
	}
}

static PyMethodDef pub_methods[] = {
	{"close", pub_close, METH_NOARGS, "Close the publisher (its loan must be done)."},
	{"send", pub_send, METH_O,
	 "send(bytes_like) -> seq: copy the bytes into the next slot and publish them."},
	{"loan", (PyCFunction)(void (*)(void))pub_loan, METH_VARARGS | METH_KEYWORDS,
	 "loan(size=None) -> Loan: the next slot to write in place (size bytes,\n"
	 "default the topic's maximum). `with pub.loan(n) as buf:` gives a writable\n"
	 "memoryview, published when the block ends without an exception."},
	{"stats", pub_stats, METH_NOARGS, "{published, superseded, skipped, publisher_id}"},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef pub_getset[] = {
	{"topic", pub_get, NULL, "the topic's name", "to"},
	{"type_name", pub_get, NULL, "the topic's type name ('' = untyped)", "ty"},
	{"max_message_size", pub_get, NULL, "largest message the topic takes", "m"},
	{"closed", pub_get, NULL, "whether close() was called", "c"},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PyPub_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._shmbus.Publisher",
	.tp_basicsize = sizeof(PyPub),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "Publisher(bus, topic, type_name=None, schema=None, max_message_size=0, "
		  "slot_count=0, history=0, integrity=False, grow=False)",
	.tp_new = PyType_GenericNew,
	.tp_init = pub_init,
	.tp_dealloc = pub_dealloc,
	.tp_methods = pub_methods,
	.tp_getset = pub_getset,
};

/* -------------------------------------------------------------- loans */

static void loan_finish(PyObject *self)
{
	PyLoan *l = (PyLoan *)self;
	PyPub *p = l->pub;
	if (!p)
		return;
	if (l->publish) {
		l->result = shmbus_pub_publish(p->pub, (size_t)l->buf.len, &l->seq);
		if (l->result == SHMBUS_EMSGSIZE) /* cannot happen: len <= capacity */
			shmbus_pub_discard(p->pub);
	} else {
		l->result = shmbus_pub_discard(p->pub);
	}
	p->loan = NULL;
	l->pub = NULL;
	Py_DECREF(p);
}

static void loan_dealloc(PyObject *self)
{
	PyLoan *l = (PyLoan *)self;
	/* Dropped without an end: not published. */
	l->publish = false;
	slotbuf_end(self, &l->buf);
	Py_TYPE(self)->tp_free(self);
}

static PyObject *loan_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	return slotbuf_memoryview(self, &((PyLoan *)self)->buf);
}

/* End the loan: publish (or discard) once no buffer over it is alive. */
static PyObject *loan_end(PyLoan *l, bool publish, bool raise_alive)
{
	if (l->buf.state != SLOTBUF_OPEN)
		return py_raise_msg(SHMBUS_ESTATE, NULL, "the loan has ended already");
	l->publish = publish;
	Py_ssize_t alive = slotbuf_end((PyObject *)l, &l->buf);
	if (alive > 0) {
		/* Its memory can still be written through them: never publish
		 * it; give the slot back when they are gone. */
		l->publish = false;
		if (!raise_alive)
			Py_RETURN_NONE;
		return py_raise_msg(SHMBUS_ESTATE, py_exc_buffer_in_use,
				    "%zd buffer(s) over the loaned slot are still alive: not "
				    "published; the slot is given back when they are deleted",
				    alive);
	}
	if (l->result)
		return py_raise(l->result, publish ? "publish" : "discard");
	if (publish)
		return PyLong_FromUnsignedLongLong(l->seq);
	Py_RETURN_NONE;
}

static PyObject *loan_exit(PyObject *self, PyObject *args)
{
	PyObject *type, *value, *tb;
	if (!PyArg_UnpackTuple(args, "__exit__", 3, 3, &type, &value, &tb))
		return NULL;
	PyLoan *l = (PyLoan *)self;
	if (l->buf.state != SLOTBUF_OPEN)
		Py_RETURN_FALSE; /* publish() or discard() was called in the block */
	bool ok = type == Py_None;
	PyObject *r = loan_end(l, ok, ok);
	if (!r)
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

static PyObject *loan_publish(PyObject *self, PyObject *args)
{
	PyLoan *l = (PyLoan *)self;
	PyObject *size = Py_None;
	if (!PyArg_ParseTuple(args, "|O:publish", &size))
		return NULL;
	if (size != Py_None) {
		Py_ssize_t s = PyLong_AsSsize_t(size);
		if (s == -1 && PyErr_Occurred())
			return NULL;
		if (s < 0 || (size_t)s > l->capacity)
			return py_raise_msg(SHMBUS_EMSGSIZE, NULL,
					    "publish of %zd bytes: the slot holds %zu", s,
					    l->capacity);
		if (l->buf.state == SLOTBUF_OPEN)
			l->buf.len = s;
	}
	return loan_end(l, true, true);
}

static PyObject *loan_discard(PyObject *self, PyObject *unused)
{
	(void)unused;
	return loan_end((PyLoan *)self, false, true);
}

static PyObject *loan_get_size(PyObject *self, void *closure)
{
	(void)closure;
	return PyLong_FromSsize_t(((PyLoan *)self)->buf.len);
}

static int loan_set_size(PyObject *self, PyObject *v, void *closure)
{
	PyLoan *l = (PyLoan *)self;
	(void)closure;
	if (!v) {
		PyErr_SetString(PyExc_AttributeError, "size cannot be deleted");
		return -1;
	}
	Py_ssize_t s = PyLong_AsSsize_t(v);
	if (s == -1 && PyErr_Occurred())
		return -1;
	if (s < 0 || (size_t)s > l->capacity) {
		py_raise_msg(SHMBUS_EMSGSIZE, NULL, "size %zd: the slot holds %zu", s,
			     l->capacity);
		return -1;
	}
	if (l->buf.state != SLOTBUF_OPEN) {
		py_raise_msg(SHMBUS_ESTATE, NULL, "the loan has ended");
		return -1;
	}
	if (l->buf.exports > 0 && s > l->buf.len) {
		py_raise_msg(SHMBUS_ESTATE, NULL,
			     "size can only shrink while buffers over the loan are alive");
		return -1;
	}
	l->buf.len = s;
	return 0;
}

static PyObject *loan_get(PyObject *self, void *closure)
{
	PyLoan *l = (PyLoan *)self;
	switch (((const char *)closure)[0]) {
	case 'c':
		return PyLong_FromSize_t(l->capacity);
	case 's':
		return PyLong_FromUnsignedLongLong(l->seq);
	case 'd':
		return slotbuf_memoryview(self, &l->buf);
	default:
		return PyBool_FromLong(l->buf.state != SLOTBUF_OPEN);
	}
}

static PyMethodDef loan_methods[] = {
	{"__enter__", loan_enter, METH_NOARGS, "The slot as a writable memoryview."},
	{"__exit__", loan_exit, METH_VARARGS,
	 "Publish `size` bytes (discard after an exception). Raises BufferInUse, and\n"
	 "publishes nothing, while buffers over the slot are still alive."},
	{"publish", loan_publish, METH_VARARGS,
	 "publish(size=None) -> seq: publish now (size bytes, default `size`)."},
	{"discard", loan_discard, METH_NOARGS, "Give the slot back unpublished."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef loan_getset[] = {
	{"size", loan_get_size, loan_set_size, "bytes that will be published", NULL},
	{"capacity", loan_get, NULL, "the slot's capacity (topic's max message size)", "c"},
	{"seq", loan_get, NULL, "sequence number once published", "s"},
	{"data", loan_get, NULL, "the slot as a writable memoryview (size bytes)", "d"},
	{"ended", loan_get, NULL, "whether it was published or discarded", "e"},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PyLoan_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._shmbus.Loan",
	.tp_basicsize = sizeof(PyLoan),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A loaned slot of a publisher (see Publisher.loan).",
	.tp_dealloc = loan_dealloc,
	.tp_methods = loan_methods,
	.tp_getset = loan_getset,
	.tp_as_buffer = &slotbuf_as_buffer,
};
