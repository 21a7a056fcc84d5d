/*
 * wire.c - where a protobuf message's top-level fields lie in its bytes,
 * without decoding it: what lets shmbus.numpy put an ndarray over an
 * image's pixel bytes in the slot. The bytes may be torn by a publisher
 * lapping the reader, so every read is bounds-checked; the caller checks
 * the view's validity after using what it found.
 */
#include "shmbus_py.h"

/* Reads a varint at *pos; false if it runs past end or over 10 bytes. */
static bool read_varint(const uint8_t *p, size_t end, size_t *pos, uint64_t *v)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 70 && *pos < end; shift += 7) {
		uint8_t b = p[(*pos)++];
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

static PyObject *bad(size_t at, const char *what)
{
	return py_raise_msg(SHMBUS_EBADMSG, NULL, "malformed message at byte %zu: %s", at, what);
}

PyObject *py_wire_fields(PyObject *self, PyObject *args)
{
	Py_buffer b;
	(void)self;
	if (!PyArg_ParseTuple(args, "y*:wire_fields", &b))
		return NULL;
	const uint8_t *p = b.buf;
	size_t end = (size_t)b.len, pos = 0;
	PyObject *out = PyDict_New();
	while (out && pos < end) {
		size_t at = pos;
		uint64_t key, val = 0;
		size_t off;
		if (!read_varint(p, end, &pos, &key)) {
			Py_CLEAR(out);
			bad(at, "truncated field key");
			break;
		}
		unsigned type = (unsigned)(key & 7);
		uint64_t field = key >> 3;
		if (field == 0 || field > 536870911u) {
			Py_CLEAR(out);
			bad(at, "invalid field number");
			break;
		}
		off = pos;
		bool ok = true;
		switch (type) {
		case 0:
			ok = read_varint(p, end, &pos, &val);
			break;
		case 1:
		case 5: {
			size_t n = type == 1 ? 8 : 4;
			ok = end - pos >= n;
			for (size_t i = 0; ok && i < n; i++)
				val |= (uint64_t)p[pos + i] << (8 * i);
			pos += ok ? n : 0;
			break;
		}
		case 2:
			ok = read_varint(p, end, &pos, &val) && val <= end - pos;
			off = pos;
			pos += ok ? (size_t)val : 0;
			break;
		default: /* groups (3, 4) and invalid types: not for us */
			ok = false;
		}
		if (!ok) {
			Py_CLEAR(out);
			bad(at, "truncated or unsupported field");
			break;
		}
		PyObject *k = PyLong_FromUnsignedLongLong(field);
		PyObject *v = Py_BuildValue("(InK)", type, (Py_ssize_t)off, (unsigned long long)val);
		if (!k || !v || PyDict_SetItem(out, k, v) < 0)
			Py_CLEAR(out);
		Py_XDECREF(k);
		Py_XDECREF(v);
	}
	PyBuffer_Release(&b);
	return out;
}
