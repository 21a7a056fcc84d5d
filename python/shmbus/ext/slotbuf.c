/*
 * slotbuf.c - handing slot memory to Python through the buffer protocol,
 * and taking it back: the state machine drawn in shmbus_py.h. Views
 * (read-only, a message in place) and loans (writable, a slot being
 * filled) are both slot buffers.
 *
 * Why this shape: a memoryview can be revoked (memoryview.release()), an
 * ndarray or a memoryview slice cannot; what can be done about those is to
 * count them (every export comes back through bf_releasebuffer) and keep
 * the slot held until the last one is gone, so nothing ever reads a slot
 * after the bus was told it may be reused.
 */
#include "shmbus_py.h"

static int slotbuf_getbuffer(PyObject *owner, Py_buffer *view, int flags)
{
	struct slotbuf *b = &((struct slotbuf_owner *)owner)->buf;
	if (b->state != SLOTBUF_OPEN) {
		py_raise_msg(SHMBUS_ESTATE, NULL,
			     "%s has ended: its slot may be reused, so no new buffer is given",
			     Py_TYPE(owner)->tp_name);
		view->obj = NULL;
		return -1;
	}
	if (PyBuffer_FillInfo(view, owner, b->data, b->len, b->readonly, flags) < 0)
		return -1;
	b->exports++;
	return 0;
}

static void finish(PyObject *owner, struct slotbuf *b)
{
	b->state = SLOTBUF_ENDED;
	b->finish(owner); /* may use data and len */
	b->data = NULL;
	b->len = 0;
}

static void slotbuf_releasebuffer(PyObject *owner, Py_buffer *view)
{
	struct slotbuf *b = &((struct slotbuf_owner *)owner)->buf;
	(void)view;
	b->exports--;
	if (b->exports == 0 && b->state == SLOTBUF_DRAINING) {
		/* The last ndarray or slice over the slot is gone. A finish()
		 * here must not leave an exception behind (we may be inside a
		 * deallocation). */
		PyObject *type, *value, *tb;
		PyErr_Fetch(&type, &value, &tb);
		finish(owner, b);
		PyErr_Restore(type, value, tb);
	}
}

PyBufferProcs slotbuf_as_buffer = {slotbuf_getbuffer, slotbuf_releasebuffer};

PyObject *slotbuf_memoryview(PyObject *owner, struct slotbuf *b)
{
	if (b->state != SLOTBUF_OPEN)
		return py_raise_msg(SHMBUS_ESTATE, NULL,
				    "%s has ended: its data may no longer be used",
				    Py_TYPE(owner)->tp_name);
	PyObject *mv = b->mv ? PyWeakref_GetObject(b->mv) : Py_None;
	if (mv != Py_None)
		return Py_NewRef(mv);
	/* Held weakly: the memoryview holds the owner (through its buffer),
	 * so a strong reference back would be a cycle that keeps the slot. */
	mv = PyMemoryView_FromObject(owner);
	if (!mv)
		return NULL;
	Py_XSETREF(b->mv, PyWeakref_NewRef(mv, NULL));
	if (!b->mv) {
		Py_DECREF(mv);
		return NULL;
	}
	return mv;
}

Py_ssize_t slotbuf_end(PyObject *owner, struct slotbuf *b)
{
	if (b->state == SLOTBUF_ENDED)
		return 0;
	if (b->state == SLOTBUF_OPEN) {
		b->state = SLOTBUF_DRAINING;
		/* The caller holds a reference to owner (a method's self), or
		 * owner is being deallocated, and then no memoryview over it
		 * is alive: releasing it cannot free owner under us. */
		PyObject *mv = b->mv ? PyWeakref_GetObject(b->mv) : Py_None;
		if (mv != Py_None) {
			/* Revokes `data` everywhere it was passed; fails (and is
			 * left alone) while something was exported from it. */
			PyObject *r = PyObject_CallMethod(mv, "release", NULL);
			if (r)
				Py_DECREF(r);
			else
				PyErr_Clear();
		}
		Py_CLEAR(b->mv);
		if (b->state == SLOTBUF_DRAINING && b->exports == 0)
			finish(owner, b);
	}
	return b->state == SLOTBUF_ENDED ? 0 : b->exports;
}
