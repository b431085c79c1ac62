"""``import traceflow as pcapkit`` against the real PyPCAPKit 1.4.1 (``pypcapkit==1.4.1.post2``): the same
tracing script, run once with each module in a folder of its own, must give the same ``.trace`` (repr, every
Index's fields, ``len``, ``to_dict``), the same dump file names, and the same pcap dumps byte for byte; where
PyPCAPKit's own pcap dump is wrong (its frame bytes are not the source's), traceflow's must equal the records
of the source capture instead. Captures: those whose ``pcapkit_1.4.1`` column in manifest.tsv says PyPCAPKit's
index is right (``same``); the others are held to expected/ in test_conformance.py."""

import json
import os
import plistlib
import re
import struct
import warnings
from decimal import Decimal

import pytest

import traceflow

from conftest import conformance_dir, manifest

pcapkit = pytest.importorskip('pcapkit', reason='the oracle: pip install pypcapkit==1.4.1.post2')

SAME = sorted(n for n, r in manifest().items() if r['pcapkit_1.4.1'] == 'same')

#: Dump files where PyPCAPKit's own output is wrong (pcap frame bytes, unreadable plists), for the summary.
PCAPKIT_WRONG = []


def script(module, fin, trace_format=None):
    """A PyPCAPKit tracing script, as users write it (dumps go to the default ./tmp)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        extractor = module.extract(fin=fin, nofile=True, trace=True, tcp=True, trace_format=trace_format)
    return extractor


def run_both(tmp_path, monkeypatch, fin, trace_format=None):
    out = {}
    for name, module in (('pcapkit', pcapkit), ('traceflow', traceflow)):
        d = tmp_path / name
        d.mkdir()
        monkeypatch.chdir(d)
        out[name] = (script(module, fin, trace_format), d / 'tmp')
    return out


def pcap_records(path):
    """The records of a little- or big-endian microsecond pcap: [(header, data)] in file order."""
    data = open(path, 'rb').read()
    magic = data[:4]
    endian = {b'\xd4\xc3\xb2\xa1': '<', b'\xa1\xb2\xc3\xd4': '>'}.get(magic)
    if endian is None:
        return None
    off, out = 24, []
    while off + 16 <= len(data):
        caplen = struct.unpack(endian + 'I', data[off + 8:off + 12])[0]
        out.append((data[off:off + 16], data[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    return endian, out


@pytest.mark.parametrize('name', SAME)
def test_index_tuple_equals_pcapkit(name, tmp_path, monkeypatch):
    fin = os.path.join(conformance_dir(), 'captures', name)
    got = run_both(tmp_path, monkeypatch, fin)
    pk, tf = got['pcapkit'][0], got['traceflow'][0]
    assert repr(tf.trace) == repr(pk.trace)
    assert str(tf.trace) == str(pk.trace)
    assert [i.to_dict() for i in tf.trace.tcp] == [i.to_dict() for i in pk.trace.tcp]
    assert [len(i) for i in tf.trace.tcp] == [len(i) for i in pk.trace.tcp]
    assert [tuple(i) for i in tf.trace.tcp] == [tuple(i) for i in pk.trace.tcp]
    # PyPCAPKit miscounts the frames of a big-endian pcap (bigendian.pcap): the frame count is held to expected/.
    with open(os.path.join(conformance_dir(), 'expected', name + '.json')) as f:
        assert tf.length == json.load(f)['frames']
    assert type(tf.trace.tcp) is tuple and all(type(i.index) is tuple for i in tf.trace.tcp)
    # The pcap dumps: the same files, byte for byte where PyPCAPKit writes the source's frames.
    pk_dir, tf_dir = got['pcapkit'][1], got['traceflow'][1]
    assert sorted(os.listdir(tf_dir)) == sorted(os.listdir(pk_dir))
    source = pcap_records(fin)
    for entry in tf.trace.tcp:
        fname = os.path.basename(entry.fpout)
        mine, theirs = (tf_dir / fname).read_bytes(), (pk_dir / fname).read_bytes()
        if source is None:
            # Only microsecond pcaps are rebuilt from the source here (the corpus's other formats are variants
            # PyPCAPKit cannot read, held to expected/ in test_conformance.py).
            continue
        # The expected file: PyPCAPKit's global header, then the source's records of the flow's frames (a flow
        # whose label repeats in the capture has all of its flows' frames).
        frames = [n for e in tf.trace.tcp if e.label == entry.label for n in e.index]
        endian, records = source
        expected = theirs[:24] + b''.join(
            struct.pack('<IIII', *struct.unpack(endian + 'IIII', h)) + d
            for h, d in (records[n - 1] for n in sorted(frames)))
        if theirs == expected:
            assert mine == theirs, f'{name}: {fname} differs from PyPCAPKit'
        else:
            PCAPKIT_WRONG.append((name, fname))
            assert mine == expected, f'{name}: {fname} differs from the source capture\'s records'


# The decoded dumps: PyPCAPKit's and traceflow's renderings of each field differ (enum names, checksum bytes,
# float TTLs), so they are compared by structure: the same files, the same frames in the same order, and the same
# frame facts (number, epoch time, lengths, record header).
FACTS = ('frame_info', 'number', 'time_epoch', 'len', 'cap_len')
DECODED = [n for n in SAME if manifest()[n]['format'] == 'pcap'][::6]


def load(fmt, data):
    if fmt == 'json':
        return json.loads(data)
    # PyPCAPKit writes <date> with microseconds, which plistlib does not read: dates are compared as text.
    return plistlib.loads(re.sub(rb'<date>([^<]*)</date>', rb'<string>\1</string>', data))


@pytest.mark.parametrize('fmt', ['json', 'plist', 'tree'])
@pytest.mark.parametrize('name', DECODED)
def test_decoded_dumps_match_pcapkit_frames(name, fmt, tmp_path, monkeypatch):
    fin = os.path.join(conformance_dir(), 'captures', name)
    got = run_both(tmp_path, monkeypatch, fin, trace_format=fmt)
    pk, tf = got['pcapkit'][0], got['traceflow'][0]
    assert [i.to_dict() for i in tf.trace.tcp] == [i.to_dict() for i in pk.trace.tcp]
    pk_dir, tf_dir = got['pcapkit'][1], got['traceflow'][1]
    assert sorted(os.listdir(tf_dir)) == sorted(os.listdir(pk_dir))
    for fname in os.listdir(pk_dir):
        mine, theirs = (tf_dir / fname).read_bytes(), (pk_dir / fname).read_bytes()
        if fmt == 'tree':
            heads = [[ln for ln in t.decode().splitlines() if ln.startswith('Frame ')] for t in (mine, theirs)]
            assert heads[0] == heads[1], fname
            continue
        a = load(fmt, mine)
        try:
            b = load(fmt, theirs)
        except Exception:  # pylint: disable=broad-except
            # PyPCAPKit writes payload bytes that are not XML (http-content-gzip.pcap): its file is not a plist.
            PCAPKIT_WRONG.append((name, fname))
            continue
        assert list(a) == list(b), fname
        for k in a:
            for fact in FACTS:
                va, vb = a[k][fact], b[k][fact]
                if fact == 'time_epoch':
                    # PyPCAPKit prints the Decimal without trailing zeros (1385391358.38763), traceflow with the
                    # capture's digits (1385391358.387630): the same number.
                    va, vb = Decimal(va), Decimal(vb)
                assert va == vb, f'{fname} {k} {fact}: {va!r} != {vb!r}'


def test_without_trace_and_tcp_as_pcapkit(tmp_path, monkeypatch):
    fin = os.path.join(conformance_dir(), 'captures', SAME[0])
    for module in (pcapkit, traceflow):
        monkeypatch.chdir(tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            e = module.extract(fin=fin, nofile=True)
            with pytest.raises(AttributeError) as raised:
                e.trace  # pylint: disable=pointless-statement
            assert type(raised.value).__name__ == 'UnsupportedCall'
            assert str(raised.value) == "'Extractor(trace=False)' object has no attribute 'trace'"
            e = module.extract(fin=fin, nofile=True, trace=True)
            assert e.trace.tcp is None
            assert repr(e.trace) == '<TraceFlowData tcp=None>'
    assert not (tmp_path / 'tmp').exists()


def test_missing_capture_raises_as_pcapkit(tmp_path):
    for module in (pcapkit, traceflow):
        with pytest.raises(FileNotFoundError) as raised:
            module.extract(fin=str(tmp_path / 'nope'), nofile=True, trace=True, tcp=True)
        assert type(raised.value).__name__ == 'FileNotFound'
        assert raised.value.filename == str(tmp_path / 'nope.pcap')


def test_unknown_trace_format_warns_as_pcapkit(tmp_path, monkeypatch):
    """PyPCAPKit logs its FormatWarning (and then filters the Python warning out); traceflow issues it as a Python
    warning of the same class and message. Both trace with fpout None and make the (empty) ./tmp."""
    import logging  # pylint: disable=import-outside-toplevel
    fin = os.path.join(conformance_dir(), 'captures', 'http-simple-get.pcap')
    results = []
    for module in (pcapkit, traceflow):
        d = tmp_path / module.__name__
        d.mkdir()
        monkeypatch.chdir(d)
        logged = []
        handler = logging.Handler()
        handler.emit = lambda r, logged=logged: logged.append(r.getMessage())
        log = logging.getLogger('pcapkit')
        log.disabled = False
        log.addHandler(handler)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                e = module.extract(fin=fin, nofile=True, trace=True, tcp=True, trace_format='csv')
        finally:
            log.removeHandler(handler)
            log.disabled = True
        said = [m for m in logged if 'format' in m] if module is pcapkit else \
            [str(w.message) for w in caught if w.category is traceflow.FormatWarning]
        results.append((said, [i.to_dict() for i in e.trace.tcp], sorted(os.listdir(d / 'tmp'))))
        assert all(i.fpout is None for i in e.trace.tcp)
    assert results[0] == results[1]
    assert results[1][0] == ['Unsupported output format: csv; disabled file output feature']


def test_trace_fout_that_is_a_file_raises_file_exists(tmp_path):
    fin = os.path.join(conformance_dir(), 'captures', 'http-simple-get.pcap')
    (tmp_path / 'taken').write_text('x')
    for module in (pcapkit, traceflow):
        with pytest.raises(FileExistsError) as raised:
            module.extract(fin=fin, nofile=True, trace=True, tcp=True, trace_fout=str(tmp_path / 'taken'))
        assert type(raised.value).__name__ == 'FileExists'


def test_names_a_script_imports():
    for n in ('TREE', 'JSON', 'PLIST', 'PCAP', 'LINK', 'INET', 'TRANS', 'APP', 'RAW', 'DPKT', 'Scapy', 'PyShark',
              'PCAPKit'):
        assert getattr(traceflow, n) == getattr(pcapkit, n), n
    from pcapkit.utilities import exceptions, warnings as pw  # pylint: disable=import-outside-toplevel
    for n in ('UnsupportedCall', 'FileExists', 'FileNotFound', 'FormatError', 'IterableError', 'CallableError'):
        theirs = getattr(exceptions, n)
        assert [b.__name__ for b in getattr(traceflow, n).__mro__[1:]] == [b.__name__ for b in theirs.__mro__[1:]], n
    for n in ('FormatWarning', 'FileWarning'):
        theirs = getattr(pw, n)
        assert [b.__name__ for b in getattr(traceflow, n).__mro__[1:]] == [b.__name__ for b in theirs.__mro__[1:]], n


def test_pcapkit_wrong_dumps_are_named():
    """Prints where PyPCAPKit's own pcap dumps are wrong (run after the index tests), for the record."""
    caps = sorted({c for c, _ in PCAPKIT_WRONG})
    print(f'\nPyPCAPKit wrote {len(PCAPKIT_WRONG)} wrong dumps (pcap frame bytes, unreadable plists) of {len(caps)} captures: '
          f'{", ".join(caps[:20])}{" ..." if len(caps) > 20 else ""}')
