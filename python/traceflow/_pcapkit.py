"""The drop-in part: PyPCAPKit 1.4.1's ``extract()`` for flow tracing, with its parameter names and defaults, its
``Extractor`` properties, errors, warnings and dump files, done by traceflow (ingest into a database, read the
index tuple back, dump each flow with traceflow's dump code). A script that had ``import pcapkit`` runs with
``import traceflow as pcapkit``. What traceflow does not do raises ``UnsupportedCall`` naming the option."""

import io
import os
import shutil
import sys
import tempfile
import warnings

from . import _native
from ._errors import (CallableError, FileExists, FileNotFound, FileWarning, FormatError, FormatWarning,
                      IterableError, UnsupportedCall)
from ._info import Index, TraceFlowData

__all__ = [
    'extract', 'reassemble', 'trace', 'Extractor',
    'TREE', 'JSON', 'PLIST', 'PCAP',
    'LINK', 'INET', 'TRANS', 'APP', 'RAW',
    'DPKT', 'Scapy', 'PyShark', 'PCAPKit',
]

# output file formats
TREE = 'tree'
JSON = 'json'
PLIST = 'plist'
PCAP = 'pcap'

# layer thresholds
RAW = 'none'
LINK = 'link'
INET = 'internet'
TRANS = 'transport'
APP = 'application'

# extraction engines
DPKT = 'dpkt'
Scapy = 'scapy'
PCAPKit = 'default'
PyShark = 'pyshark'

#: PyPCAPKit's input extensions (``Extractor.PCAP_EXT``): another name gets ``.pcap`` appended.
PCAP_EXT = ['.pcap', '.cap', '.pcapng']

#: PyPCAPKit's dump formats: (traceflow's format, the file extension).
_OUTPUT = {
    'pcap': ('pcap', '.pcap'),
    'cap': ('pcap', '.pcap'),
    'plist': ('plist', '.plist'),
    'xml': ('plist', '.plist'),
    'json': ('json', '.json'),
    'tree': ('tree', '.txt'),
    'text': ('text', '.txt'),
    'txt': ('tree', '.txt'),
}


#: The snapshot length PyPCAPKit's pcap dumps have in their header, whatever the capture's.
_PCAPKIT_SNAPLEN = 262144


def _unsupported(option, why):
    return UnsupportedCall(f'traceflow.extract({option}): {why}')


def _check_options(kw):
    """Raises ``UnsupportedCall`` for the first option traceflow does not do."""
    if not kw['nofile']:
        raise _unsupported('nofile=False', 'traceflow does not write the extracted frames (fout, format, files); '
                           'pass nofile=True, and trace_fout/trace_format for the per-flow dumps')
    if not kw['auto']:
        raise _unsupported('auto=False', 'frames are not extracted one by one; use auto=True')
    if kw['verbose']:
        raise _unsupported('verbose=...', 'there is no per-frame callback; drop verbose')
    if (kw['engine'] or 'default').lower() not in ('default', 'pcapkit'):
        raise _unsupported(f"engine={kw['engine']!r}", 'traceflow is its own engine; drop engine')
    if kw['layer'] is not None:
        raise _unsupported(f"layer={kw['layer']!r}", 'frames are not dissected up to a layer; drop layer')
    if kw['protocol'] is not None:
        raise _unsupported(f"protocol={kw['protocol']!r}", 'frames are not dissected up to a protocol; drop protocol')
    if kw['reassembly']:
        raise _unsupported('reassembly=True', 'traceflow does not reassemble IP or TCP payloads')
    if kw['no_eof']:
        raise _unsupported('no_eof=True', 'live captures are read with `traceflow ingest --watch`, not here')
    if kw['trace_byteorder'] not in ('big', 'little'):
        raise ValueError(f"trace_byteorder={kw['trace_byteorder']!r}: use 'big' or 'little'")


def _input_name(fin, extension):
    """``fin`` as PyPCAPKit's ``make_name`` resolves it, or ``FileNotFound``."""
    if isinstance(fin, os.PathLike):
        fin = os.fspath(fin)
    if extension:
        ifnm = fin if os.path.splitext(fin)[1] in PCAP_EXT else f'{fin}.pcap'
    else:
        ifnm = fin
    if not os.path.isfile(ifnm):
        raise FileNotFound(2, 'No such file or directory', ifnm)
    return ifnm


def _make_fout(fout, fmt):
    """PyPCAPKit's ``TraceFlow.make_fout``: the dump folder made, and the (format, extension) or (None, None)
    with ``FormatWarning`` for a format it does not know."""
    fmt_ext = _OUTPUT.get(fmt)
    if fmt_ext is None:
        warnings.warn(f'Unsupported output format: {fmt}; disabled file output feature', FormatWarning,
                      stacklevel=4)
    try:
        os.makedirs(fout, exist_ok=True)
    except FileExistsError as error:
        if fmt_ext is None:
            warnings.warn(error.strerror, FileWarning, stacklevel=4)
        else:
            raise FileExists(*error.args).with_traceback(error.__traceback__)
    return fmt_ext if fmt_ext is not None else (None, None)


class Extractor:
    """The result of :func:`extract` (PyPCAPKit's ``pcapkit.foundation.extraction.Extractor``): ``.trace.tcp`` is
    the tuple of :class:`Index` of the capture's TCP flows, ``.length`` its number of frames."""

    #: List of potential PCAP file extensions.
    PCAP_EXT = PCAP_EXT

    def __init__(self, fin=None, fout=None, format=None,  # pylint: disable=redefined-builtin
                 auto=True, extension=True, store=True,
                 files=False, nofile=False, verbose=False,
                 engine=None, layer=None, protocol=None,
                 reassembly=False, reasm_strict=True, reasm_store=True,
                 trace=False, trace_fout=None, trace_format=None,
                 trace_byteorder=sys.byteorder, trace_nanosecond=False,
                 ip=False, ipv4=False, ipv6=False, tcp=False,
                 buffer_size=io.DEFAULT_BUFFER_SIZE, buffer_save=False, buffer_path=None,
                 no_eof=False, *, db=None):
        if fin is None:
            fin = 'in.pcap'
        stream = None
        if isinstance(fin, (str, os.PathLike)):
            ifnm = _input_name(fin, extension)
        else:
            stream = fin
            ifnm = getattr(fin, 'name', '<stream>')
        _check_options(locals())
        self._ifnm = ifnm
        self._flag_t = trace
        self._tcp = tcp
        self._flag_d = store
        self._db = os.fspath(db) if db is not None else None
        self._index = None
        fmt = fmt_ext = None
        fproot = None
        if trace and tcp:
            fproot = trace_fout if trace_fout is not None else './tmp'
            fmt = trace_format if trace_format is not None else 'pcap'
            fmt_ext = _make_fout(fproot, fmt)
        tmp = None
        try:
            if self._db is None:
                tmp = tempfile.mkdtemp(prefix='traceflow-extract-')
                dbpath = os.path.join(tmp, 'extract.db')
            else:
                dbpath = self._db
            path = ifnm
            if stream is not None:
                path = os.path.join(tmp or tempfile.mkdtemp(prefix='traceflow-extract-'), 'stream.pcap')
                with open(path, 'wb') as f:
                    shutil.copyfileobj(stream, f)
            self._magic = _magic(path)
            # One spelling of the path for the ingest and the lookup (`a/../b` is stored as given).
            path = os.path.abspath(path)
            summary = _native.ingest(dbpath, [path])
            if summary['failed'] or summary['not_captures']:
                why = '; '.join(summary['messages']) or f'unknown file format: {self._magic!r}'
                raise FormatError(why)
            cid = _native.resolve_capture(dbpath, path)
            caps = [c for c in _captures(dbpath) if c['id'] == cid]
            self._frnum = caps[0]['frames'] if caps else 0
            if trace and tcp:
                tf_format, ext = fmt_ext
                if tf_format is not None:
                    _native.dump_dir(dbpath, cid, fproot, tf_format, byteorder=trace_byteorder,
                                     nanosecond=trace_nanosecond, force=True, snaplen=_PCAPKIT_SNAPLEN)
                self._index = tuple(
                    Index(fpout=f'{fproot}/{label}{ext}' if ext is not None else None, index=frames, label=label)
                    for _capture, label, frames in _native.index(dbpath, cid))
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    @property
    def length(self):
        """Number of frames in the capture."""
        return self._frnum

    @property
    def input(self):
        """Name of the input capture."""
        return self._ifnm

    @property
    def format(self):
        """Always raises: there is no output file (``nofile=True``)."""
        raise UnsupportedCall("'Extractor(nofile=True)' object has no attribute 'format'")

    @property
    def output(self):
        """Always raises: there is no output file (``nofile=True``)."""
        raise UnsupportedCall("'Extractor(nofile=True)' object has no attribute 'format'")

    @property
    def frame(self):
        """Always raises: traceflow keeps no dissected frames."""
        if self._flag_d:
            raise UnsupportedCall("traceflow's Extractor has no attribute 'frame': it keeps no dissected frames")
        raise UnsupportedCall("'Extractor(store=False)' object has no attribute 'frame'")

    @property
    def reassembly(self):
        """Always raises, as PyPCAPKit does without ``reassembly=True``."""
        raise UnsupportedCall("'Extractor(reassembly=False)' object has no attribute 'reassembly'")

    @property
    def trace(self):
        """The traced flows: ``.tcp`` is the tuple of :class:`Index` (``None`` without ``tcp=True``)."""
        if self._flag_t:
            return TraceFlowData(tcp=self._index if self._tcp else None)
        raise UnsupportedCall("'Extractor(trace=False)' object has no attribute 'trace'")

    @property
    def engine(self):
        """Always raises: traceflow has no PyPCAPKit engine object."""
        raise UnsupportedCall("traceflow's Extractor has no attribute 'engine'")

    @property
    def magic_number(self):
        """The first four bytes of the input capture."""
        return self._magic

    @property
    def database(self):
        """The :class:`traceflow.Database` of ``db=PATH``, or ``None`` (a temporary database was used)."""
        if self._db is None:
            return None
        from ._db import Database  # pylint: disable=import-outside-toplevel
        return Database(self._db)

    def run(self):
        """Does nothing: the extraction ran when the object was made (``auto=True``)."""

    def __iter__(self):
        raise IterableError("'Extractor(auto=True)' object is not iterable")

    def __next__(self):
        raise IterableError("'Extractor(auto=True)' object is not iterable")

    def __call__(self):
        raise CallableError("'Extractor(auto=True)' object is not callable")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        pass

    @classmethod
    def register_dumper(cls, *args, **kwargs):
        """Not supported: traceflow writes its own dump formats."""
        raise UnsupportedCall('Extractor.register_dumper: traceflow writes its own dump formats')

    @classmethod
    def register_engine(cls, *args, **kwargs):
        """Not supported: traceflow is its own engine."""
        raise UnsupportedCall('Extractor.register_engine: traceflow is its own engine')

    @classmethod
    def register_reassembly(cls, *args, **kwargs):
        """Not supported: traceflow does not reassemble."""
        raise UnsupportedCall('Extractor.register_reassembly: traceflow does not reassemble')

    @classmethod
    def register_traceflow(cls, *args, **kwargs):
        """Not supported: traceflow traces TCP only, its own way."""
        raise UnsupportedCall('Extractor.register_traceflow: traceflow traces TCP flows only')


def _magic(path):
    with open(path, 'rb') as f:
        return f.read(4)


def _captures(db):
    import json  # pylint: disable=import-outside-toplevel
    return json.loads(_native.captures_json(db))


def extract(fin=None, fout=None, format=None,  # pylint: disable=redefined-builtin
            auto=True, extension=True, store=True,
            files=False, nofile=False, verbose=False,
            engine=None, layer=None, protocol=None,
            reassembly=False, reasm_strict=True, reasm_store=True,
            trace=False, trace_fout=None, trace_format=None,
            trace_byteorder=sys.byteorder, trace_nanosecond=False,
            ip=False, ipv4=False, ipv6=False, tcp=False,
            buffer_size=io.DEFAULT_BUFFER_SIZE, buffer_save=False, buffer_path=None,
            no_eof=False, *, db=None):
    """Trace the TCP flows of a capture as PyPCAPKit 1.4.1's ``pcapkit.extract()`` does.

    ``extract(fin='in.pcap', nofile=True, trace=True, tcp=True)`` returns an :class:`Extractor` whose
    ``.trace.tcp`` is the tuple of :class:`Index` (``fpout``, ``index``, ``label``), equal to PyPCAPKit's; the
    flows are dumped as ``{trace_fout}/{label}{ext}`` (default ``./tmp``, ``pcap``). Parameters and defaults
    are PyPCAPKit's; ``db=PATH`` (traceflow's own) keeps the database instead of a temporary one. Options
    traceflow does not do (``nofile=False``, ``reassembly``, ``engine``, ``layer``, ``protocol``, ``verbose``,
    ``auto=False``, ``no_eof``) raise :class:`UnsupportedCall` naming the option.
    """
    return Extractor(fin=fin, fout=fout, format=format, auto=auto, extension=extension, store=store,
                     files=files, nofile=nofile, verbose=verbose, engine=engine, layer=layer, protocol=protocol,
                     reassembly=reassembly, reasm_strict=reasm_strict, reasm_store=reasm_store,
                     trace=trace, trace_fout=trace_fout, trace_format=trace_format,
                     trace_byteorder=trace_byteorder, trace_nanosecond=trace_nanosecond,
                     ip=ip, ipv4=ipv4, ipv6=ipv6, tcp=tcp, buffer_size=buffer_size, buffer_save=buffer_save,
                     buffer_path=buffer_path, no_eof=no_eof, db=db)


def reassemble(protocol, strict=False):
    """Not supported: traceflow does not reassemble (PyPCAPKit's ``pcapkit.reassemble``)."""
    raise UnsupportedCall(f'traceflow.reassemble({protocol!r}): traceflow does not reassemble')


def trace(protocol, fout, format, byteorder=sys.byteorder, nanosecond=False):  # pylint: disable=redefined-builtin
    """Not supported: a frame-by-frame tracer object (PyPCAPKit's ``pcapkit.trace``); use :func:`extract`."""
    raise UnsupportedCall(f'traceflow.trace({protocol!r}): there is no frame-by-frame tracer; '
                          'use traceflow.extract(fin=..., nofile=True, trace=True, tcp=True)')
