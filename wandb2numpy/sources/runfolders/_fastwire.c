/* The hot loops of the run-file reader (`fast.py`), compiled: framing with checksums, cutting
 * history and summary messages into items, and coding item keys.
 *
 * Optional: `fast.py` has numpy versions of the same three functions, used when this module was
 * not built (no C compiler at install time); the tests hold both to the exact reader. Every read
 * is bounds-checked against the buffer: a malformed file gives None ("decline": the exact reader
 * takes the file), never a read outside it. Results are returned as bytes of little-endian int64,
 * read with numpy.frombuffer, so the module needs no numpy headers to build. The GIL is released
 * while the loops run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#define BLOCK 32768
#define HEAD 7

/* ------------------------------------------------------------------ CRC-32 (zlib's), by 8 bytes */

static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = crc_table[0][i];
        for (int t = 1; t < 8; t++) {
            c = crc_table[0][c & 0xFF] ^ (c >> 8);
            crc_table[t][i] = c;
        }
    }
}

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, Py_ssize_t n) {
    uint32_t c = ~crc;
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
            crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

static PyObject *py_crc32(PyObject *self, PyObject *args) {
    Py_buffer data;
    unsigned long seed = 0;
    if (!PyArg_ParseTuple(args, "y*|k", &data, &seed)) return NULL;
    uint32_t c = crc32_update((uint32_t)seed, data.buf, data.len);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(c);
}

/* ------------------------------------------------------------------ varints */

/* The varint at *i (before end); advances *i. -1: it runs past `end` or past 2**62. */
static int64_t varint(const unsigned char *b, Py_ssize_t *i, Py_ssize_t end) {
    uint64_t v = 0;
    for (int shift = 0; shift < 63; shift += 7) {
        if (*i >= end) return -1;
        unsigned char x = b[(*i)++];
        v |= (uint64_t)(x & 0x7F) << shift;
        if (x < 0x80) return v > ((uint64_t)1 << 62) ? -1 : (int64_t)v;
    }
    return -1;
}

/* ------------------------------------------------------------------ growing int64 output */

typedef struct {
    int64_t *v;
    Py_ssize_t n, cap;
} Out;

static int out_push(Out *o, const int64_t *vals, int k) {
    if (o->n + k > o->cap) {
        Py_ssize_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->n + k) cap *= 2;
        int64_t *v = PyMem_RawRealloc(o->v, (size_t)cap * sizeof(int64_t));
        if (!v) return -1;
        o->v = v;
        o->cap = cap;
    }
    memcpy(o->v + o->n, vals, (size_t)k * sizeof(int64_t));
    o->n += k;
    return 0;
}

static PyObject *out_bytes(Out *o) {
    PyObject *r = PyBytes_FromStringAndSize((const char *)o->v, o->n * (Py_ssize_t)sizeof(int64_t));
    PyMem_RawFree(o->v);
    o->v = NULL;
    return r;
}

/* Whether every span [s[i], e[i]) of two int64 arrays of one length lies inside a buffer of n. */
static int spans_inside(const int64_t *s, const int64_t *e, const Py_buffer *vs, const Py_buffer *ve, Py_ssize_t n) {
    if (vs->len != ve->len) return 0;
    Py_ssize_t m = vs->len / (Py_ssize_t)sizeof(int64_t);
    for (Py_ssize_t i = 0; i < m; i++)
        if (s[i] < 0 || e[i] > n || s[i] > e[i]) return 0;
    return 1;
}

/* ------------------------------------------------------------------ framing */

/* frame(buf, n, first) -> (records, tail) or None
 *
 * Every whole record of the first `n` bytes of `buf` (whole 32 KiB blocks, the first record at
 * `first`), its checksum checked: `records` holds 5 int64 per record, in file order: data start,
 * data length, type, the oneof tag after `num` (-1: not that shape, or not a whole record) and the
 * start of that oneof's message (which then ends where the record ends). `tail`: where a record
 * or header cut short by the end of the buffer starts (n: none). None: a checksum failed, a
 * record ran past its block, or a type is unknown (damage: the exact reader describes it).
 */
static PyObject *py_frame(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t n, first;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &n, &first)) return NULL;
    if (n > view.len || n < 0 || first < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "n or first outside the buffer");
        return NULL;
    }
    const unsigned char *b = view.buf;
    uint32_t seeds[5];
    for (int t = 0; t < 5; t++) {
        unsigned char k = (unsigned char)t;
        seeds[t] = crc32_update(0, &k, 1);
    }
    Out out = {0};
    Py_ssize_t tail = n;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t pos = first;
    while (pos < n) {
        Py_ssize_t block_end = (pos / BLOCK + 1) * BLOCK;
        if (block_end > n) block_end = n;
        if (block_end - pos < HEAD) {
            if (block_end == n) {
                for (Py_ssize_t i = pos; i < n; i++)
                    if (b[i]) {
                        tail = pos; /* a header cut short */
                        break;
                    }
            }
            pos = block_end;
            continue;
        }
        uint32_t crc = (uint32_t)b[pos] | (uint32_t)b[pos + 1] << 8 | (uint32_t)b[pos + 2] << 16 |
                       (uint32_t)b[pos + 3] << 24;
        Py_ssize_t length = (Py_ssize_t)b[pos + 4] | (Py_ssize_t)b[pos + 5] << 8;
        int kind = b[pos + 6];
        if (kind == 0 && length == 0 && crc == 0) { /* preallocated zeros: nothing written */
            pos = block_end;
            continue;
        }
        Py_ssize_t start = pos + HEAD, end = start + length;
        if (end > block_end) {
            if (block_end == n && n % BLOCK) {
                tail = pos; /* cut short: a writer still at work, or killed */
                break;
            }
            bad = 1;
            break;
        }
        if (kind < 1 || kind > 4 || crc32_update(seeds[kind], b + start, length) != crc) {
            bad = 1;
            break;
        }
        int64_t tag = -1, sub = 0;
        if (kind == 1 && length > 1 && b[start] == 0x08) {
            Py_ssize_t i = start + 1;
            if (varint(b, &i, end) >= 0 && i < end) {
                int t = b[i++];
                int64_t len = (t == 0x12 || t == 0x1A) ? varint(b, &i, end) : -1;
                if (len >= 0 && i + len == end) {
                    tag = t;
                    sub = i;
                }
            }
        }
        int64_t rec[5] = {start, length, kind, tag, sub};
        if (out_push(&out, rec, 5) < 0) {
            bad = 2;
            break;
        }
        pos = end;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (bad) {
        PyMem_RawFree(out.v);
        if (bad == 2) return PyErr_NoMemory();
        Py_RETURN_NONE;
    }
    PyObject *records = out_bytes(&out);
    if (!records) return NULL;
    return Py_BuildValue("(Nn)", records, tail);
}

/* ------------------------------------------------------------------ items */

/* items(buf, begin, end, removes) -> bytes or None
 *
 * The items of the messages spanning [begin[i], end[i]) (int64 arrays) of history records
 * (removes=0: fields `item` 1 and `step` 2, skipped) or summary records (removes=1: `update` 1;
 * a `remove` declines): 5 int64 per item, in file order: the message's index, the key's start
 * and end (its key and nested_key fields, raw), the value's start and end (value_json, which must
 * be the item's last field). None: a field this reader does not know.
 */
static PyObject *py_items(PyObject *self, PyObject *args) {
    Py_buffer view, vb, ve;
    int removes;
    if (!PyArg_ParseTuple(args, "y*y*y*p", &view, &vb, &ve, &removes)) return NULL;
    const unsigned char *b = view.buf;
    const int64_t *begin = vb.buf, *ends = ve.buf;
    Py_ssize_t m = vb.len / (Py_ssize_t)sizeof(int64_t);
    int bad = 0;
    Out out = {0};
    if (ve.len != vb.len) bad = 1;
    for (Py_ssize_t r = 0; r < m && !bad; r++)
        if (begin[r] < 0 || ends[r] > view.len || begin[r] > ends[r]) bad = 1;
    if (!bad) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = 0; r < m && !bad; r++) {
            Py_ssize_t i = begin[r], end = ends[r];
            while (i < end) {
                int tag = b[i++];
                int64_t len = varint(b, &i, end);
                if (len < 0 || i + len > end) {
                    bad = 1;
                    break;
                }
                Py_ssize_t a = i, e = i + len;
                i = e;
                if (tag == 0x12 && !removes) continue; /* HistoryRecord.step */
                if (tag != 0x0A) {
                    bad = 1;
                    break;
                }
                /* an item: key fields, then the value */
                Py_ssize_t k = a;
                int64_t item[5] = {r, a, -1, -1, e};
                while (k < e) {
                    int t = b[k];
                    if (t == 0x0A || t == 0x12) {
                        k++;
                        int64_t kl = varint(b, &k, e);
                        if (kl < 0 || k + kl > e) break;
                        k += kl;
                    } else if (t == 0x82 && k + 1 < e && b[k + 1] == 0x01 && k > a) {
                        item[2] = k;
                        k += 2;
                        int64_t vl = varint(b, &k, e);
                        if (vl >= 0 && k + vl == e) item[3] = k;
                        break;
                    } else {
                        break;
                    }
                }
                if (item[3] < 0) {
                    bad = 1;
                    break;
                }
                if (out_push(&out, item, 5) < 0) {
                    bad = 2;
                    break;
                }
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&ve);
    if (bad) {
        PyMem_RawFree(out.v);
        if (bad == 2) return PyErr_NoMemory();
        Py_RETURN_NONE;
    }
    return out_bytes(&out);
}

/* ------------------------------------------------------------------ key codes */

/* key_codes(buf, start, end) -> (codes, firsts, lasts)
 *
 * A code for each key buf[start[i]:end[i]] (equal bytes, equal code; codes in order of first
 * appearance) and, per code, the index of its first and of its last key. A hash table with
 * exact comparison.
 */
static PyObject *py_key_codes(PyObject *self, PyObject *args) {
    Py_buffer view, vs, ve;
    if (!PyArg_ParseTuple(args, "y*y*y*", &view, &vs, &ve)) return NULL;
    const unsigned char *b = view.buf;
    const int64_t *s = vs.buf, *e = ve.buf;
    Py_ssize_t m = vs.len / (Py_ssize_t)sizeof(int64_t);
    int bad = !spans_inside(s, e, &vs, &ve, view.len);
    PyObject *codes = bad ? NULL : PyBytes_FromStringAndSize(NULL, m * (Py_ssize_t)sizeof(int64_t));
    Out firsts = {0}, lasts = {0};
    Py_ssize_t cap = 64;
    int64_t *table = NULL;
    if (codes) {
        int64_t *c = (int64_t *)PyBytes_AS_STRING(codes);
        table = PyMem_RawMalloc((size_t)cap * sizeof(int64_t));
        if (!table) bad = 2;
        else memset(table, 0xFF, (size_t)cap * sizeof(int64_t));
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < m && !bad; i++) {
            uint64_t h = 1469598103934665603ull;
            Py_ssize_t len = e[i] - s[i];
            for (Py_ssize_t j = 0; j < len; j++) h = (h ^ b[s[i] + j]) * 1099511628211ull;
            Py_ssize_t slot = (Py_ssize_t)(h & (uint64_t)(cap - 1));
            for (;;) {
                int64_t code = table[slot];
                if (code < 0) { /* a new key */
                    int64_t at = i;
                    code = firsts.n;
                    if (out_push(&firsts, &at, 1) < 0 || out_push(&lasts, &at, 1) < 0) {
                        bad = 2;
                        break;
                    }
                    table[slot] = code;
                    c[i] = code;
                    if (firsts.n * 2 > cap) { /* grow, rehash the first keys */
                        Py_ssize_t ncap = cap * 4;
                        int64_t *nt = PyMem_RawMalloc((size_t)ncap * sizeof(int64_t));
                        if (!nt) {
                            bad = 2;
                            break;
                        }
                        memset(nt, 0xFF, (size_t)ncap * sizeof(int64_t));
                        for (Py_ssize_t q = 0; q < firsts.n; q++) {
                            int64_t f = firsts.v[q];
                            uint64_t g = 1469598103934665603ull;
                            for (Py_ssize_t j = s[f]; j < e[f]; j++) g = (g ^ b[j]) * 1099511628211ull;
                            Py_ssize_t t = (Py_ssize_t)(g & (uint64_t)(ncap - 1));
                            while (nt[t] >= 0) t = (t + 1) & (ncap - 1);
                            nt[t] = q;
                        }
                        PyMem_RawFree(table);
                        table = nt;
                        cap = ncap;
                    }
                    break;
                }
                int64_t f = firsts.v[code];
                if (e[f] - s[f] == len && memcmp(b + s[f], b + s[i], (size_t)len) == 0) {
                    c[i] = code;
                    lasts.v[code] = i;
                    break;
                }
                slot = (slot + 1) & (cap - 1);
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(table);
    PyBuffer_Release(&view);
    PyBuffer_Release(&vs);
    PyBuffer_Release(&ve);
    if (bad || !codes) {
        Py_XDECREF(codes);
        PyMem_RawFree(firsts.v);
        PyMem_RawFree(lasts.v);
        if (bad == 2) return PyErr_NoMemory();
        if (bad) {
            PyErr_SetString(PyExc_ValueError, "key spans outside the buffer");
        }
        return NULL;
    }
    PyObject *f = out_bytes(&firsts), *l = out_bytes(&lasts);
    if (!f || !l) {
        Py_DECREF(codes);
        Py_XDECREF(f);
        Py_XDECREF(l);
        return NULL;
    }
    return Py_BuildValue("(NNN)", codes, f, l);
}

/* ------------------------------------------------------------------ numbers */

/* Whether b[0:n] is a JSON number (RFC 8259's grammar, exactly). */
static int json_number(const unsigned char *b, Py_ssize_t n) {
    Py_ssize_t i = 0;
    if (i < n && b[i] == '-') i++;
    if (i >= n) return 0;
    if (b[i] == '0') i++;
    else if (b[i] >= '1' && b[i] <= '9') while (i < n && b[i] >= '0' && b[i] <= '9') i++;
    else return 0;
    if (i < n && b[i] == '.') {
        i++;
        if (i >= n || b[i] < '0' || b[i] > '9') return 0;
        while (i < n && b[i] >= '0' && b[i] <= '9') i++;
    }
    if (i < n && (b[i] == 'e' || b[i] == 'E')) {
        i++;
        if (i < n && (b[i] == '+' || b[i] == '-')) i++;
        if (i >= n || b[i] < '0' || b[i] > '9') return 0;
        while (i < n && b[i] >= '0' && b[i] <= '9') i++;
    }
    return i == n;
}

/* Eisel and Lemire's algorithm (Lemire, "Number Parsing at a Gigabyte per Second", 2021, as in
 * Rust's core::num::dec2flt::lemire): w * 10**q rounded to the nearest float64 from a 128-bit
 * truncated power of five, or 0 where the truncation leaves the rounding in doubt (then the
 * caller asks the interpreter's own parser). The powers come from Python (`set_powers`). */
static uint64_t powers[651][2]; /* 5**q for q in [-342, 308]: the 128 bits under the top set bit */
static int have_powers = 0;

static PyObject *py_set_powers(PyObject *self, PyObject *args) {
    Py_buffer t;
    if (!PyArg_ParseTuple(args, "y*", &t)) return NULL;
    if (t.len != (Py_ssize_t)sizeof(powers)) {
        PyBuffer_Release(&t);
        PyErr_SetString(PyExc_ValueError, "651 pairs of uint64 expected");
        return NULL;
    }
    memcpy(powers, t.buf, sizeof(powers));
    have_powers = 1;
    PyBuffer_Release(&t);
    Py_RETURN_NONE;
}

static inline void mul128(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
    unsigned __int128 r = (unsigned __int128)a * b;
    *hi = (uint64_t)(r >> 64);
    *lo = (uint64_t)r;
}

static int eisel_lemire(int64_t q, uint64_t w, int negative, double *out) {
    uint64_t bits;
    if (w == 0 || q < -342) {
        bits = 0;
    } else if (q > 308) {
        return 0; /* infinite: the caller's to judge */
    } else {
        int lz = __builtin_clzll(w);
        w <<= lz;
        const uint64_t *p5 = powers[q + 342];
        uint64_t hi, lo;
        mul128(w, p5[0], &hi, &lo);
        const uint64_t mask = 0xFFFFFFFFFFFFFFFFull >> 55;
        if ((hi & mask) == mask) {
            uint64_t hi2, lo2;
            mul128(w, p5[1], &hi2, &lo2);
            lo += hi2;
            if (hi2 > lo) hi++;
        }
        if (lo == 0xFFFFFFFFFFFFFFFFull && !(q >= -27 && q <= 55)) return 0;
        int upperbit = (int)(hi >> 63);
        uint64_t mantissa = hi >> (upperbit + 9);
        int64_t power2 = (((int64_t)q * (152170 + 65536)) >> 16) + 63 + upperbit - lz + 1023;
        if (power2 <= 0) { /* subnormal */
            if (-power2 + 1 >= 64) {
                bits = 0;
            } else {
                mantissa >>= -power2 + 1;
                mantissa += mantissa & 1;
                mantissa >>= 1;
                power2 = mantissa >= (1ull << 52) ? 1 : 0;
                bits = (mantissa & ~(1ull << 52)) | ((uint64_t)power2 << 52);
            }
        } else {
            if (lo <= 1 && q >= -4 && q <= 23 && (mantissa & 3) == 1 && (mantissa << (upperbit + 9)) == hi)
                mantissa &= ~1ull; /* exactly halfway: round to even */
            mantissa += mantissa & 1;
            mantissa >>= 1;
            if (mantissa >= (2ull << 52)) {
                mantissa = 1ull << 52;
                power2++;
            }
            mantissa &= ~(1ull << 52);
            if (power2 >= 0x7FF) return 0;
            bits = mantissa | ((uint64_t)power2 << 52);
        }
    }
    if (negative) bits |= 1ull << 63;
    memcpy(out, &bits, sizeof bits);
    return 1;
}

/* A JSON number's text as a float64: 1 done, 0 ask the interpreter (over 19 significant digits,
 * a huge exponent, a doubtful rounding, an infinite result), -1 not a JSON number. */
static int parse_number(const unsigned char *b, Py_ssize_t n, double *out) {
    if (!json_number(b, n)) return -1;
    Py_ssize_t i = 0;
    int negative = b[0] == '-';
    i += negative;
    uint64_t w = 0;
    int digits = 0;
    int64_t q = 0;
    for (; i < n && b[i] >= '0' && b[i] <= '9'; i++) {
        if (w == 0 && b[i] == '0') continue;
        if (digits == 19) return 0;
        w = w * 10 + (uint64_t)(b[i] - '0');
        digits++;
    }
    if (i < n && b[i] == '.') {
        for (i++; i < n && b[i] >= '0' && b[i] <= '9'; i++) {
            q--;
            if (w == 0 && b[i] == '0') continue;
            if (digits == 19) return 0;
            w = w * 10 + (uint64_t)(b[i] - '0');
            digits++;
        }
    }
    if (i < n) { /* e or E */
        i++;
        int eneg = 0;
        if (b[i] == '+' || b[i] == '-') eneg = b[i++] == '-';
        int64_t e = 0;
        for (; i < n; i++) {
            if (e > 100000) return 0;
            e = e * 10 + (b[i] - '0');
        }
        q += eneg ? -e : e;
    }
    return eisel_lemire(q, w, negative, out);
}

/* floats(buf, start, end) -> bytes of float64, or None
 *
 * Each value text buf[start[i]:end[i]] as a float64, rounded as Python's float() rounds (both
 * correctly rounded), when every text is a JSON number or one of NaN, Infinity, -Infinity as
 * wandb writes them; None when one is anything else (a bool, a string, a number past float64's
 * range), for the caller's exact reading, value by value.
 */
static PyObject *py_floats(PyObject *self, PyObject *args) {
    Py_buffer view, vs, ve;
    if (!PyArg_ParseTuple(args, "y*y*y*", &view, &vs, &ve)) return NULL;
    const unsigned char *b = view.buf;
    const int64_t *s = vs.buf, *e = ve.buf;
    Py_ssize_t m = vs.len / (Py_ssize_t)sizeof(int64_t);
    int bad = !have_powers || !spans_inside(s, e, &vs, &ve, view.len);
    PyObject *out = bad ? NULL : PyBytes_FromStringAndSize(NULL, m * (Py_ssize_t)sizeof(double));
    Out ask = {0}; /* values for the interpreter's parser */
    if (out) {
        double *v = (double *)PyBytes_AS_STRING(out);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < m; i++) {
            const unsigned char *p = b + s[i];
            Py_ssize_t n = e[i] - s[i];
            if (n == 3 && memcmp(p, "NaN", 3) == 0) v[i] = Py_NAN;
            else if (n == 8 && memcmp(p, "Infinity", 8) == 0) v[i] = Py_HUGE_VAL;
            else if (n == 9 && memcmp(p, "-Infinity", 9) == 0) v[i] = -Py_HUGE_VAL;
            else {
                int got = parse_number(p, n, v + i);
                if (got < 0) {
                    bad = 3;
                    break;
                }
                if (got == 0) {
                    int64_t at = i;
                    if (out_push(&ask, &at, 1) < 0) {
                        bad = 2;
                        break;
                    }
                }
            }
        }
        Py_END_ALLOW_THREADS
        char text[128];
        for (Py_ssize_t k = 0; k < ask.n && !bad; k++) {
            Py_ssize_t i = ask.v[k], n = e[i] - s[i];
            if (n >= (Py_ssize_t)sizeof(text)) {
                bad = 3;
                break;
            }
            memcpy(text, b + s[i], (size_t)n);
            text[n] = 0;
            double d = PyOS_string_to_double(text, NULL, NULL);
            if ((d == -1.0 && PyErr_Occurred()) || !isfinite(d)) {
                PyErr_Clear();
                bad = 3; /* past float64's range: the caller's exact reading decides */
                break;
            }
            v[i] = d;
        }
    }
    PyMem_RawFree(ask.v);
    PyBuffer_Release(&view);
    PyBuffer_Release(&vs);
    PyBuffer_Release(&ve);
    if (bad == 3) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    if (bad == 2) {
        Py_XDECREF(out);
        return PyErr_NoMemory();
    }
    if (bad) {
        PyErr_SetString(PyExc_ValueError, have_powers ? "value spans outside the buffer" : "set_powers first");
        return NULL;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"floats", py_floats, METH_VARARGS, "Value texts as float64, when all are JSON numbers."},
    {"set_powers", py_set_powers, METH_VARARGS, "The table of powers of five `floats` needs."},
    {"crc32", py_crc32, METH_VARARGS, "zlib's CRC-32 of a buffer, from a running value."},
    {"frame", py_frame, METH_VARARGS, "Frame and check the records of whole blocks."},
    {"items", py_items, METH_VARARGS, "The items of history or summary messages."},
    {"key_codes", py_key_codes, METH_VARARGS, "A code for each key, equal bytes equal code."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastwire", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastwire(void) {
    crc_init();
    return PyModule_Create(&module);
}
