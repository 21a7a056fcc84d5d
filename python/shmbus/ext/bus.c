/*
 * bus.c - the Bus type: a connection (shmbus_connect), and what `shmbus
 * topics` and `shmbus info` show, as Python lists and dicts.
 */
#include "shmbus_py.h"

bool py_bus_open(PyBus *b)
{
	if (b->bus)
		return true;
	py_raise_msg(SHMBUS_ESTATE, NULL, "the bus connection is closed");
	return false;
}

static int bus_init(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "autostart", "broker_path", "timeout", "key_file", NULL};
	PyBus *b = (PyBus *)self;
	const char *name = NULL, *broker = NULL, *key = NULL;
	int autostart = 1;
	PyObject *timeout = Py_None;

	if (b->bus) {
		PyErr_SetString(PyExc_RuntimeError, "Bus.__init__ called twice");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|zpzOz:Bus", kwlist, &name, &autostart,
					 &broker, &timeout, &key))
		return -1;
	struct shmbus_connect_options o;
	shmbus_connect_options_init(&o);
	o.autostart = autostart;
	o.broker_path = broker;
	o.key_file = key;
	if (timeout != Py_None) {
		int64_t t = py_timeout_ns(timeout);
		if (t == -2)
			return -1;
		o.timeout_ns = t;
	}
	int rc;
	shmbus_bus *bus = NULL;
	/* Connecting may start the broker and wait for it: no GIL. */
	Py_BEGIN_ALLOW_THREADS
	rc = shmbus_connect(name, &o, &bus);
	Py_END_ALLOW_THREADS
	if (rc) {
		py_raise(rc, "connect");
		return -1;
	}
	b->bus = bus;
	return 0;
}

static PyObject *bus_close(PyObject *self, PyObject *unused)
{
	PyBus *b = (PyBus *)self;
	(void)unused;
	if (!b->bus)
		Py_RETURN_NONE;
	if (b->children > 0)
		return py_raise_msg(SHMBUS_ESTATE, NULL,
				    "%zd publishers and subscribers of this bus are still open",
				    b->children);
	shmbus_disconnect(b->bus);
	b->bus = NULL;
	Py_RETURN_NONE;
}

static void bus_dealloc(PyObject *self)
{
	PyBus *b = (PyBus *)self;
	/* Children hold a reference: none is left when we get here. */
	if (b->bus)
		shmbus_disconnect(b->bus);
	Py_TYPE(self)->tp_free(self);
}

static int add_topic(void *ctx, const char *topic, const char *type_name)
{
	PyObject *t = Py_BuildValue("(ss)", topic, type_name);
	if (!t)
		return 1;
	int rc = PyList_Append(ctx, t);
	Py_DECREF(t);
	return rc ? 1 : 0;
}

static PyObject *bus_topics(PyObject *self, PyObject *unused)
{
	PyBus *b = (PyBus *)self;
	(void)unused;
	if (!py_bus_open(b))
		return NULL;
	PyObject *list = PyList_New(0);
	if (!list)
		return NULL;
	int rc = shmbus_list_topics(b->bus, add_topic, list);
	if (rc == 1 && PyErr_Occurred()) {
		Py_DECREF(list);
		return NULL;
	}
	if (rc) {
		Py_DECREF(list);
		return py_raise(rc, "list_topics");
	}
	return list;
}

static int set_item(PyObject *d, const char *key, PyObject *v)
{
	if (!v)
		return -1;
	int rc = PyDict_SetItemString(d, key, v);
	Py_DECREF(v);
	return rc;
}

static PyObject *client_dict(const struct shmbus_client_info *c, bool sub)
{
	PyObject *d = PyDict_New();
	if (!d)
		return NULL;
	int bad = set_item(d, "pid", PyLong_FromLong(c->pid)) ||
		  set_item(d, "id", PyLong_FromUnsignedLong(c->id));
	if (sub)
		bad = bad || set_item(d, "received", PyLong_FromUnsignedLongLong(c->count)) ||
		      set_item(d, "lost", PyLong_FromUnsignedLongLong(c->lost)) ||
		      set_item(d, "next_seq", PyLong_FromUnsignedLongLong(c->next_seq)) ||
		      set_item(d, "lag", PyLong_FromUnsignedLongLong(c->lag)) ||
		      set_item(d, "rejected", PyLong_FromUnsignedLongLong(c->rejected)) ||
		      set_item(d, "waiting", PyBool_FromLong(c->waiting));
	else
		bad = bad || set_item(d, "published", PyLong_FromUnsignedLongLong(c->count)) ||
		      set_item(d, "skipped", PyLong_FromUnsignedLongLong(c->lost));
	if (bad) {
		Py_DECREF(d);
		return NULL;
	}
	return d;
}

static PyObject *client_list(const struct shmbus_client_info *c, size_t n, bool sub)
{
	PyObject *list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; list && i < n; i++) {
		PyObject *d = client_dict(&c[i], sub);
		if (!d) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, (Py_ssize_t)i, d);
	}
	return list;
}

#define INFO_CLIENTS_MAX 256

static PyObject *bus_info(PyObject *self, PyObject *args)
{
	PyBus *b = (PyBus *)self;
	const char *topic;
	if (!PyArg_ParseTuple(args, "s:info", &topic) || !py_bus_open(b))
		return NULL;
	struct shmbus_topic_info ti;
	struct shmbus_client_info *pubs = PyMem_Calloc(2 * INFO_CLIENTS_MAX, sizeof(*pubs));
	if (!pubs)
		return PyErr_NoMemory();
	struct shmbus_client_info *subs = pubs + INFO_CLIENTS_MAX;
	size_t np = 0, ns = 0;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shmbus_topic_inspect(b->bus, topic, &ti, pubs, INFO_CLIENTS_MAX, &np, subs,
				  INFO_CLIENTS_MAX, &ns);
	Py_END_ALLOW_THREADS
	if (rc) {
		PyMem_Free(pubs);
		return py_raise(rc, "info");
	}
	PyObject *d = PyDict_New();
	int bad = !d || set_item(d, "name", PyUnicode_FromString(ti.name)) ||
		  set_item(d, "type_name", PyUnicode_FromString(ti.type_name)) ||
		  set_item(d, "slot_count", PyLong_FromUnsignedLong(ti.slot_count)) ||
		  set_item(d, "slot_size", PyLong_FromUnsignedLong(ti.slot_size)) ||
		  set_item(d, "max_message_size", PyLong_FromUnsignedLong(ti.max_message_size)) ||
		  set_item(d, "history", PyLong_FromUnsignedLong(ti.history)) ||
		  set_item(d, "integrity", PyBool_FromLong(ti.flags & SHMBUS_TOPIC_INTEGRITY)) ||
		  set_item(d, "flags", PyLong_FromUnsignedLong(ti.flags)) ||
		  set_item(d, "waiters", PyLong_FromUnsignedLong(ti.waiters)) ||
		  set_item(d, "schema_versions", PyLong_FromUnsignedLong(ti.schema_versions)) ||
		  set_item(d, "grown", PyLong_FromUnsignedLong(ti.grown)) ||
		  set_item(d, "schema_size", PyLong_FromUnsignedLongLong(ti.schema_size)) ||
		  set_item(d, "segment_size", PyLong_FromUnsignedLongLong(ti.segment_size)) ||
		  set_item(d, "next_seq", PyLong_FromUnsignedLongLong(ti.next_seq)) ||
		  set_item(d, "broker_bytes", PyLong_FromUnsignedLongLong(ti.broker_bytes)) ||
		  set_item(d, "publishers", client_list(pubs, np, false)) ||
		  set_item(d, "subscribers", client_list(subs, ns, true));
	PyMem_Free(pubs);
	if (bad) {
		Py_XDECREF(d);
		return NULL;
	}
	return d;
}

static PyObject *bus_get_name(PyObject *self, void *closure)
{
	PyBus *b = (PyBus *)self;
	(void)closure;
	if (!py_bus_open(b))
		return NULL;
	return PyUnicode_FromString(shmbus_bus_name(b->bus));
}

static PyObject *bus_get_broker_pid(PyObject *self, void *closure)
{
	PyBus *b = (PyBus *)self;
	(void)closure;
	if (!py_bus_open(b))
		return NULL;
	return PyLong_FromLong(shmbus_broker_pid(b->bus));
}

static PyObject *bus_get_closed(PyObject *self, void *closure)
{
	(void)closure;
	return PyBool_FromLong(((PyBus *)self)->bus == NULL);
}

static PyMethodDef bus_methods[] = {
	{"close", bus_close, METH_NOARGS,
	 "Disconnect. Its publishers and subscribers must be closed first."},
	{"topics", bus_topics, METH_NOARGS,
	 "[(name, type_name)] of the topics this user may subscribe to ('' = untyped)."},
	{"info", bus_info, METH_VARARGS,
	 "info(topic) -> dict: layout, type, counts, and each publisher and subscriber\n"
	 "(what `shmbus info TOPIC` shows)."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef bus_getset[] = {
	{"name", bus_get_name, NULL, "the bus's name", NULL},
	{"broker_pid", bus_get_broker_pid, NULL, "process id of the broker", NULL},
	{"closed", bus_get_closed, NULL, "whether close() was called", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PyBus_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._shmbus.Bus",
	.tp_basicsize = sizeof(PyBus),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "Bus(name=None, autostart=True, broker_path=None, timeout=None, "
		  "key_file=None): a connection to a bus (starts its broker if needed).",
	.tp_new = PyType_GenericNew,
	.tp_init = bus_init,
	.tp_dealloc = bus_dealloc,
	.tp_methods = bus_methods,
	.tp_getset = bus_getset,
};
