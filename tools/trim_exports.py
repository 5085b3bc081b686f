#!/usr/bin/env python3
"""Drops proxy-wasm callbacks the filter does not implement from a .wasm module's exports.

The Rust SDK exports every proxy_on_* callback, and Envoy calls each one it finds: on every
request that is a call into the Wasm VM per body chunk, per response header block and so on,
each returning the default. The host skips a callback the module does not export, with the
same result (continue), so removing the export removes the call. The functions stay in the
code section, unreferenced; nothing else changes.

Usage: trim_exports.py IN.wasm OUT.wasm
"""
import sys

# Callbacks the filter leaves at the SDK's default: the host's behaviour without them is the
# same (continue / done). The body, response header and log callbacks read the usage record.
UNUSED = {
    "proxy_on_response_trailers",
    "proxy_on_done",
}
EXPORT_SECTION = 7


def leb(data, pos):
    """Reads an unsigned LEB128 at pos; returns (value, next pos)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def to_leb(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sections(module):
    """Yields (id, start, body start, end) of each section of a Wasm module."""
    if module[:8] != b"\0asm\x01\0\0\0":
        raise ValueError("not a Wasm module (version 1)")
    pos = 8
    while pos < len(module):
        size, body = leb(module, pos + 1)
        yield module[pos], pos, body, body + size
        pos = body + size


def exports(module, body, end):
    """Yields (name, encoded entry) of each export in the export section at body..end."""
    count, p = leb(module, body)
    for _ in range(count):
        start = p
        name_len, p = leb(module, p)
        name = module[p:p + name_len].decode()
        p += name_len + 1  # the name, then the kind byte
        _, p = leb(module, p)
        yield name, module[start:p]
    if p != end:
        raise ValueError("malformed export section")


def export_names(module):
    return [name for sid, _, body, end in sections(module) if sid == EXPORT_SECTION
            for name, _ in exports(module, body, end)]


def trim(module):
    out = bytearray(module[:8])
    removed = []
    for section_id, start, body, end in sections(module):
        if section_id != EXPORT_SECTION:
            out += module[start:end]
            continue
        kept = []
        for name, entry in exports(module, body, end):
            if name in UNUSED:
                removed.append(name)
            else:
                kept.append(entry)
        content = to_leb(len(kept)) + b"".join(kept)
        out += bytes([section_id]) + to_leb(len(content)) + content
    missing = UNUSED - set(removed)
    if missing:
        raise ValueError(f"exports not found (SDK changed?): {', '.join(sorted(missing))}")
    return bytes(out)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    with open(sys.argv[1], "rb") as f:
        module = f.read()
    try:
        trimmed = trim(module)
    except ValueError as e:
        # Nothing is written: a stale or empty output must not look like a finished build.
        sys.exit(f"trim_exports: {sys.argv[1]}: {e}")
    with open(sys.argv[2], "wb") as f:
        f.write(trimmed)


if __name__ == "__main__":
    main()
