/*
 * sub.c - the Subscriber type (take, blocking recv and wait with the GIL
 * released, the event-loop descriptor) and the View: a read-only slot
 * buffer over a message in place, released when its `with` block ends.
 */
#include "shmbus_py.h"

#include <stdlib.h>

static void view_finish(PyObject *self);

bool py_sub_open(PySub *s)
{
	if (s->sub)
		return true;
	py_raise_msg(SHMBUS_ESTATE, NULL, "the subscriber is closed");
	return false;
}

bool py_sub_idle(PySub *s)
{
	if (!py_sub_open(s))
		return false;
	if (!s->busy)
		return true;
	py_raise_msg(SHMBUS_ESTATE, NULL,
		     "the subscriber is in a blocking call (its own or a wait set's) in "
		     "another thread");
	return false;
}

static int sub_init(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"bus", "topic", "type_name", "schema", "max_message_size",
				 "slot_count", "history", "integrity", "start", "last",
				 "spin_ns", "stall_timeout_ns", "create", "lapped", NULL};
	PySub *s = (PySub *)self;
	PyObject *bus, *spin = Py_None, *stall = Py_None, *lapped = Py_None;
	const char *topic, *type_name = NULL;
	Py_buffer schema = {0};
	unsigned int max_size = 0, slots = 0, history = 0, last = 0;
	int integrity = 0, start = SHMBUS_START_NEW, create = 0;

	if (s->sub) {
		PyErr_SetString(PyExc_RuntimeError, "Subscriber.__init__ called twice");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O!s|zz*IIIpiIOOpO:Subscriber", kwlist,
					 &PyBus_Type, &bus, &topic, &type_name, &schema,
					 &max_size, &slots, &history, &integrity, &start, &last,
					 &spin, &stall, &create, &lapped))
		return -1;
	struct shmbus_topic_options t;
	shmbus_topic_options_init(&t);
	t.type_name = type_name;
	t.schema = schema.buf;
	t.schema_size = schema.buf ? (size_t)schema.len : 0;
	t.max_message_size = max_size;
	t.slot_count = slots;
	t.history = history;
	t.flags = integrity ? SHMBUS_TOPIC_INTEGRITY : 0;
	struct shmbus_sub_options o;
	shmbus_sub_options_init(&o);
	o.start = (enum shmbus_start)start;
	o.last_n = last;
	o.create_if_missing = create;
	if (spin != Py_None && (o.spin_ns = PyLong_AsLongLong(spin)) == -1 && PyErr_Occurred())
		goto fail;
	if (stall != Py_None && (o.stall_timeout_ns = PyLong_AsLongLong(stall)) == -1 &&
	    PyErr_Occurred())
		goto fail;
	if (lapped != Py_None) {
		long l = PyLong_AsLong(lapped);
		if (l == -1 && PyErr_Occurred())
			goto fail;
		o.lapped = (enum shmbus_lapped)l;
	}
	if (!py_bus_open((PyBus *)bus))
		goto fail;
	shmbus_sub *sub = NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shmbus_sub_open(((PyBus *)bus)->bus, topic, &t, &o, &sub);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&schema);
	if (rc) {
		py_raise(rc, "subscriber");
		return -1;
	}
	s->sub = sub;
	s->bus = (PyBus *)Py_NewRef(bus);
	s->bus->children++;
	return 0;
fail:
	PyBuffer_Release(&schema);
	return -1;
}

static PyObject *view_in_use(PySub *s)
{
	PyView *v = (PyView *)s->view;
	if (v->buf.state == SLOTBUF_OPEN)
		return py_raise_msg(SHMBUS_ESTATE, NULL,
				    "a view of this subscriber is open: end it first");
	return py_raise_msg(SHMBUS_ESTATE, py_exc_buffer_in_use,
			    "the last view's message is still held by %zd buffer(s) over it "
			    "(an ndarray, a memoryview slice): delete them first",
			    v->buf.exports);
}

static PyObject *sub_close(PyObject *self, PyObject *unused)
{
	PySub *s = (PySub *)self;
	(void)unused;
	if (!s->sub)
		Py_RETURN_NONE;
	if (!py_sub_idle(s))
		return NULL;
	if (s->view)
		return view_in_use(s);
	if (s->waitsets > 0)
		return py_raise_msg(SHMBUS_ESTATE, NULL,
				    "the subscriber is in %zd wait set(s): remove it first",
				    s->waitsets);
	shmbus_sub_close(s->sub);
	s->sub = NULL;
	s->bus->children--;
	Py_CLEAR(s->bus);
	free(s->scratch);
	s->scratch = NULL;
	Py_RETURN_NONE;
}

static void sub_dealloc(PyObject *self)
{
	PySub *s = (PySub *)self;
	/* Views and wait sets hold references: none is left here. */
	if (s->sub) {
		shmbus_sub_close(s->sub);
		s->bus->children--;
	}
	Py_XDECREF(s->bus);
	free(s->scratch);
	Py_TYPE(self)->tp_free(self);
}

/* ------------------------------------------------------------ taking */

/* 1: *out = (bytes, MsgInfo); 0: nothing there; -1: exception set. */
static int take_once(PySub *s, PyObject **out)
{
	struct shmbus_msg_info info;
	int rc;

	if (s->view) {
		view_in_use(s);
		return -1;
	}
	if (!s->scratch) {
		size_t cap = shmbus_sub_max_message_size(s->sub);
		s->scratch = malloc(cap ? cap : 1);
		if (!s->scratch) {
			PyErr_NoMemory();
			return -1;
		}
		s->scratch_cap = cap ? cap : 1;
	}
	for (;;) {
		if (s->scratch_cap > 65536) {
			Py_BEGIN_ALLOW_THREADS
			rc = shmbus_sub_take(s->sub, s->scratch, s->scratch_cap, &info);
			Py_END_ALLOW_THREADS
		} else {
			rc = shmbus_sub_take(s->sub, s->scratch, s->scratch_cap, &info);
		}
		if (rc != SHMBUS_EMSGSIZE)
			break;
		/* The topic grew: a larger buffer, and the message stays next. */
		void *p = realloc(s->scratch, info.size);
		if (!p) {
			PyErr_NoMemory();
			return -1;
		}
		s->scratch = p;
		s->scratch_cap = info.size;
	}
	if (rc == SHMBUS_EAGAIN)
		return 0;
	if (rc) {
		py_raise(rc, "take");
		return -1;
	}
	PyObject *data = PyBytes_FromStringAndSize(s->scratch, (Py_ssize_t)info.size);
	PyObject *pi = data ? py_msginfo_new(&info) : NULL;
	if (!pi) {
		Py_XDECREF(data);
		return -1;
	}
	*out = PyTuple_Pack(2, data, pi);
	Py_DECREF(data);
	Py_DECREF(pi);
	return *out ? 1 : -1;
}

static PyObject *sub_take(PyObject *self, PyObject *unused)
{
	PySub *s = (PySub *)self;
	PyObject *out;
	(void)unused;
	if (!py_sub_idle(s))
		return NULL;
	int r = take_once(s, &out);
	if (r < 0)
		return NULL;
	if (r == 0)
		Py_RETURN_NONE;
	return out;
}

static int sub_wait_fn(void *obj, int64_t timeout_ns, void *out)
{
	(void)out;
	return shmbus_sub_wait(obj, timeout_ns);
}

static void sub_interrupt_fn(void *obj)
{
	shmbus_sub_interrupt(obj);
}

/* Wait up to *left ns (< 0: forever) for something to take; 1 ready, 0
 * timed out, -1 exception. *left is what remains afterwards. */
static int wait_some(PySub *s, int64_t *left)
{
	struct py_wait w = {sub_wait_fn, sub_interrupt_fn, s->sub, NULL, &s->intr_stale};
	int64_t start = py_mono_ns();
	s->busy++;
	int rc = py_wait_run(&w, *left);
	s->busy--;
	if (*left > 0) {
		*left -= py_mono_ns() - start;
		if (*left < 0)
			*left = 0;
	}
	if (rc == PY_WAIT_RAISED)
		return -1;
	if (rc == SHMBUS_OK)
		return 1;
	if (rc == SHMBUS_ETIMEDOUT)
		return 0;
	py_raise(rc, "wait");
	return -1;
}

static PyObject *sub_wait(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	PySub *s = (PySub *)self;
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &timeout) ||
	    !py_sub_idle(s))
		return NULL;
	int64_t t = py_timeout_ns(timeout);
	if (t == -2)
		return NULL;
	int r = wait_some(s, &t);
	return r < 0 ? NULL : PyBool_FromLong(r);
}

static PyObject *sub_recv(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	PySub *s = (PySub *)self;
	PyObject *timeout = Py_None, *out;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:recv", kwlist, &timeout) ||
	    !py_sub_idle(s))
		return NULL;
	int64_t t = py_timeout_ns(timeout);
	if (t == -2)
		return NULL;
	for (;;) {
		int r = take_once(s, &out);
		if (r < 0)
			return NULL;
		if (r > 0)
			return out;
		if (t == 0)
			Py_RETURN_NONE;
		r = wait_some(s, &t);
		if (r < 0)
			return NULL;
		if (r == 0)
			Py_RETURN_NONE;
	}
}

static PyObject *sub_interrupt(PyObject *self, PyObject *unused)
{
	PySub *s = (PySub *)self;
	(void)unused;
	if (s->sub)
		shmbus_sub_interrupt(s->sub);
	Py_RETURN_NONE;
}

static PyObject *sub_fileno(PyObject *self, PyObject *unused)
{
	PySub *s = (PySub *)self;
	int fd;
	(void)unused;
	if (!py_sub_idle(s))
		return NULL;
	int rc = shmbus_sub_fd(s->sub, &fd);
	if (rc)
		return py_raise(rc, "fd");
	return PyLong_FromLong(fd);
}

static PyObject *sub_stats(PyObject *self, PyObject *unused)
{
	PySub *s = (PySub *)self;
	(void)unused;
	if (!py_sub_open(s))
		return NULL;
	struct shmbus_sub_stats st;
	shmbus_sub_stats(s->sub, &st);
	PyObject *last = st.last_seq == UINT64_MAX ? Py_NewRef(Py_None)
						    : PyLong_FromUnsignedLongLong(st.last_seq);
	if (!last)
		return NULL;
	return Py_BuildValue("{sKsKsNsKsKsK}", "received", (unsigned long long)st.received,
			     "lost", (unsigned long long)st.lost, "last_seq", last, "next_seq",
			     (unsigned long long)st.next_seq, "lag", (unsigned long long)st.lag,
			     "rejected", (unsigned long long)st.rejected);
}

/* ------------------------------------------------------------- views */

static PyObject *new_view(PySub *s, const struct shmbus_view *sv)
{
	PyView *v = PyObject_New(PyView, &PyView_Type);
	if (!v)
		return NULL;
	v->buf = (struct slotbuf){.data = (void *)sv->data,
				  .len = (Py_ssize_t)sv->info.size,
				  .readonly = true,
				  .finish = view_finish};
	v->view = *sv;
	v->sub = (PySub *)Py_NewRef(s);
	v->result = 0;
	v->info = py_msginfo_new(&sv->info);
	s->view = (PyObject *)v; /* borrowed: cleared by finish */
	if (!v->info) {
		Py_DECREF(v);
		return NULL;
	}
	return (PyObject *)v;
}

static PyObject *sub_view(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	PySub *s = (PySub *)self;
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:view", kwlist, &timeout) ||
	    !py_sub_idle(s))
		return NULL;
	int64_t t = py_timeout_ns(timeout);
	if (t == -2)
		return NULL;
	for (;;) {
		if (s->view)
			return view_in_use(s);
		struct shmbus_view sv;
		int rc = shmbus_sub_view(s->sub, &sv);
		if (rc == 0)
			return new_view(s, &sv);
		if (rc != SHMBUS_EAGAIN)
			return py_raise(rc, "view");
		int r = t == 0 ? 0 : wait_some(s, &t);
		if (r < 0)
			return NULL;
		if (r == 0)
			return py_raise_msg(SHMBUS_ETIMEDOUT, NULL, "no message to view on '%s'",
					    shmbus_sub_topic(s->sub));
	}
}

static PyObject *sub_get(PyObject *self, void *closure)
{
	PySub *s = (PySub *)self;
	const char *which = closure;
	if (which[0] == 'c')
		return PyBool_FromLong(s->sub == NULL);
	if (!py_sub_open(s))
		return NULL;
	switch (which[0]) {
	case 't':
		return PyUnicode_FromString(which[1] == 'y' ? shmbus_sub_type_name(s->sub)
							    : shmbus_sub_topic(s->sub));
	case 'm':
		return PyLong_FromSize_t(shmbus_sub_max_message_size(s->sub));
	default: {
		size_t n = 0;
		const void *p = shmbus_sub_schema(s->sub, &n);
		if (!p || n == 0)
			Py_RETURN_NONE;
		return PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
	}
	}
}

static PyMethodDef sub_methods[] = {
	{"close", sub_close, METH_NOARGS,
	 "Close the subscriber (its view must have ended, and it must be in no wait set)."},
	{"take", sub_take, METH_NOARGS,
	 "take() -> (bytes, MsgInfo), or None when there is nothing new."},
	{"recv", (PyCFunction)(void (*)(void))sub_recv, METH_VARARGS | METH_KEYWORDS,
	 "recv(timeout=None) -> (bytes, MsgInfo), or None on timeout (seconds; None:\n"
	 "forever). Blocks with the GIL released; Ctrl-C ends it (in the main thread)."},
	{"wait", (PyCFunction)(void (*)(void))sub_wait, METH_VARARGS | METH_KEYWORDS,
	 "wait(timeout=None) -> bool: whether something can be taken before the timeout."},
	{"view", (PyCFunction)(void (*)(void))sub_view, METH_VARARGS | METH_KEYWORDS,
	 "view(timeout=None) -> View of the next message in place (waits for one;\n"
	 "raises Timeout)."},
	{"interrupt", sub_interrupt, METH_NOARGS,
	 "Make the wait in progress (or the next one) raise Interrupted; any thread."},
	{"fileno", sub_fileno, METH_NOARGS,
	 "A descriptor readable while there is something to take (for event loops)."},
	{"stats", sub_stats, METH_NOARGS,
	 "{received, lost, last_seq, next_seq, lag, rejected}"},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef sub_getset[] = {
	{"topic", sub_get, NULL, "the topic's name", "to"},
	{"type_name", sub_get, NULL, "the topic's type name ('' = untyped)", "ty"},
	{"max_message_size", sub_get, NULL, "largest message the topic carries now", "m"},
	{"schema", sub_get, NULL, "the schema stored with the topic (bytes) or None", "s"},
	{"closed", sub_get, NULL, "whether close() was called", "c"},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PySub_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._shmbus.Subscriber",
	.tp_basicsize = sizeof(PySub),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "Subscriber(bus, topic, type_name=None, schema=None, max_message_size=0, "
		  "slot_count=0, history=0, integrity=False, start=START_NEW, last=0, "
		  "spin_ns=None, stall_timeout_ns=None, create=False, lapped=None)",
	.tp_new = PyType_GenericNew,
	.tp_init = sub_init,
	.tp_dealloc = sub_dealloc,
	.tp_methods = sub_methods,
	.tp_getset = sub_getset,
};

/* ------------------------------------------------------------ View */

static void view_finish(PyObject *self)
{
	PyView *v = (PyView *)self;
	PySub *s = v->sub;
	if (!s)
		return;
	v->result = shmbus_sub_release(s->sub, &v->view);
	s->view = NULL;
	v->sub = NULL;
	Py_DECREF(s);
}

static void view_dealloc(PyObject *self)
{
	PyView *v = (PyView *)self;
	slotbuf_end(self, &v->buf); /* no export is alive: finishes */
	Py_XDECREF(v->info);
	Py_TYPE(self)->tp_free(self);
}

/* End the view. Returns 1 if the message stayed valid, 0 if it was
 * overwritten while held, -1 with BufferInUse while buffers are alive. */
static int view_end(PyView *v, bool raise_alive)
{
	Py_ssize_t alive = slotbuf_end((PyObject *)v, &v->buf);
	if (alive > 0) {
		if (raise_alive)
			py_raise_msg(SHMBUS_ESTATE, py_exc_buffer_in_use,
				     "%zd buffer(s) over message %llu (an ndarray, a memoryview "
				     "slice) are still alive: the message stays held, and the "
				     "subscriber takes nothing, until they are deleted",
				     alive, (unsigned long long)v->view.info.seq);
		return -1;
	}
	return v->result == SHMBUS_ELAPPED ? 0 : 1;
}

static PyObject *view_release(PyObject *self, PyObject *unused)
{
	(void)unused;
	int r = view_end((PyView *)self, true);
	return r < 0 ? NULL : PyBool_FromLong(r);
}

static PyObject *view_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	return Py_NewRef(self);
}

static PyObject *view_exit(PyObject *self, PyObject *args)
{
	PyObject *type, *value, *tb;
	if (!PyArg_UnpackTuple(args, "__exit__", 3, 3, &type, &value, &tb))
		return NULL;
	PyView *v = (PyView *)self;
	bool was_open = v->buf.state == SLOTBUF_OPEN;
	bool ok = type == Py_None;
	int r = view_end(v, ok);
	if (r < 0 && ok)
		return NULL;
	if (r == 0 && ok && was_open)
		return py_raise_msg(SHMBUS_ELAPPED, NULL,
				    "message %llu was overwritten while the view was held: what "
				    "was read from it is not what was published",
				    (unsigned long long)v->view.info.seq);
	Py_RETURN_FALSE;
}

static PyObject *view_valid(PyObject *self, PyObject *unused)
{
	PyView *v = (PyView *)self;
	(void)unused;
	if (v->buf.state == SLOTBUF_ENDED)
		return py_raise_msg(SHMBUS_ESTATE, NULL, "the view has ended");
	return PyBool_FromLong(shmbus_sub_view_valid(v->sub->sub, &v->view));
}

static PyObject *view_get(PyObject *self, void *closure)
{
	PyView *v = (PyView *)self;
	switch (((const char *)closure)[0]) {
	case 'd':
		return slotbuf_memoryview(self, &v->buf);
	case 'i':
		return Py_NewRef(v->info);
	case 's':
		return v->sub ? Py_NewRef(v->sub) : Py_NewRef(Py_None);
	case 'a':
		/* The address of the payload: for tests and diagnostics. */
		return PyLong_FromVoidPtr((void *)v->view.data);
	default:
		return PyBool_FromLong(v->buf.state == SLOTBUF_ENDED);
	}
}

static PyMethodDef view_methods[] = {
	{"__enter__", view_enter, METH_NOARGS, "The view itself."},
	{"__exit__", view_exit, METH_VARARGS,
	 "Release the message. Raises Lapped if it was overwritten while held, and\n"
	 "BufferInUse while buffers over it (ndarrays, slices) are still alive."},
	{"release", view_release, METH_NOARGS,
	 "release() -> bool: end the view; False if the message was overwritten while\n"
	 "held. Raises BufferInUse while buffers over it are alive (it then ends when\n"
	 "they are deleted)."},
	{"valid", view_valid, METH_NOARGS,
	 "Whether everything read from the view so far is what was published."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef view_getset[] = {
	{"data", view_get, NULL, "the message as a read-only memoryview (until release)", "d"},
	{"info", view_get, NULL, "MsgInfo of the message", "i"},
	{"subscriber", view_get, NULL, "the subscriber (None once ended)", "s"},
	{"address", view_get, NULL, "address of the message in the topic's mapping", "a"},
	{"released", view_get, NULL, "whether the view has ended", "r"},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PyView_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._shmbus.View",
	.tp_basicsize = sizeof(PyView),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A message in place in shared memory (see Subscriber.view).",
	.tp_dealloc = view_dealloc,
	.tp_methods = view_methods,
	.tp_getset = view_getset,
	.tp_as_buffer = &slotbuf_as_buffer,
};
