"""PyPCAPKit 1.4.1's ``Info`` data classes as its tracing returns them: ``Index`` (one traced flow: ``fpout``,
``index``, ``label``) and ``TraceFlowData`` (``.trace``: ``tcp``). Immutable mappings with attribute access,
``to_dict()``, and PyPCAPKit's ``repr``/``str`` (and its ``len``, which counts two internal slots)."""

import collections.abc

from ._errors import UnsupportedCall

__all__ = ['Info', 'Index', 'TraceFlowData']


class Info(collections.abc.Mapping):
    """An immutable mapping whose keys are also attributes (``pcapkit.corekit.infoclass.Info``)."""

    __fields__ = ()

    def __init__(self, *args, **kwargs):
        names = type(self).__fields__
        if len(args) > len(names):
            raise TypeError(f'{type(self).__name__}() takes {len(names)} arguments ({len(args)} given)')
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k in values:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument '{k}'")
            values[k] = v
        missing = [n for n in names if n not in values]
        if missing:
            raise TypeError(f"{type(self).__name__}() missing argument(s): {', '.join(missing)}")
        # PyPCAPKit keeps two name maps in the instance's __dict__, which its __len__ counts.
        object.__setattr__(self, '__map__', {})
        object.__setattr__(self, '__map_reverse__', {})
        for n in names:
            self.__dict__[n] = values[n]

    def _items(self):
        return ((k, v) for k, v in self.__dict__.items() if k not in ('__map__', '__map_reverse__'))

    def __str__(self):
        args = ', '.join(f'{k}={v}' for k, v in self._items())
        return f'{type(self).__name__}({args})'

    def __repr__(self):
        parts = []
        for k, v in self._items():
            parts.append(f'{k}={type(v).__name__}(...)' if isinstance(v, Info) else f'{k}={v!r}')
        return f"<{type(self).__name__} {', '.join(parts)}>"

    def __len__(self):
        return len(self.__dict__)

    def __iter__(self):
        return (k for k, _ in self._items())

    def __getitem__(self, name):
        if name in ('__map__', '__map_reverse__'):
            raise KeyError(name)
        return self.__dict__[name]

    def __setattr__(self, name, value):
        raise UnsupportedCall("can't set attribute")

    def __delattr__(self, name):
        raise UnsupportedCall("can't delete attribute")

    def to_dict(self):
        """The fields as a dict (nested ``Info`` values as dicts too)."""
        return {k: (v.to_dict() if isinstance(v, Info) else v) for k, v in self._items()}


class Index(Info):
    """One traced TCP flow: ``fpout`` (its dump file, or ``None``), ``index`` (its frame numbers from 1, a
    tuple) and ``label`` (``{src}_{srcport}-{dst}_{dstport}-{ts}``)."""

    __fields__ = ('fpout', 'index', 'label')


class TraceFlowData(Info):
    """What ``Extractor.trace`` gives: ``tcp``, the tuple of ``Index`` (``None`` without ``tcp=True``)."""

    __fields__ = ('tcp',)
