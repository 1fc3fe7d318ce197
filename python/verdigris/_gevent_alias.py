"""Run programs written for gevent on verdigris, unmodified: :func:`install_as_gevent`.

After ``verdigris.install_as_gevent()``, ``import gevent`` gives the :mod:`verdigris` package
and ``import gevent.X`` (``from gevent import X``) gives ``verdigris.X``: the same module
objects, not copies, so ``gevent.spawn is verdigris.spawn``, ``gevent.monkey.saved is
verdigris.monkey.saved`` and a greenlet spawned through either name is the same kind of
object::

    import verdigris
    verdigris.install_as_gevent()      # first thing, before anything imports gevent

    from gevent import monkey
    monkey.patch_all()
    import gevent, gevent.socket
    gevent.spawn(print, 'hello from verdigris').join()

Names keep saying what they are: ``gevent.__name__ == 'verdigris'`` and
``gevent.socket.__name__ == 'verdigris.socket'``; only the keys of :data:`sys.modules` say
``gevent``. ``import gevent.X`` for an ``X`` verdigris does not have (``gevent.libev``)
raises :exc:`ModuleNotFoundError` naming ``gevent.X``. The alias holds for this process only:
child processes that should use it must call :func:`install_as_gevent` themselves.

Discussion: why a finder, not a loop over sys.modules.
    Filling :data:`sys.modules` up front would import every verdigris module (the SSL and
    subprocess ones included) whether or not the program uses them. A finder at the front of
    :data:`sys.meta_path` answers ``gevent.X`` on demand by importing ``verdigris.X`` and handing
    back that very module; the import system then files it under ``gevent.X`` too. It also
    keeps the real gevent, if installed, from being found behind the alias's back.
"""
import importlib
import sys
from importlib.machinery import ModuleSpec

__all__ = ['install_as_gevent']

_ALIAS = 'gevent'
_TARGET = 'verdigris'


class _AliasLoader:
    """Loads ``gevent.X`` by returning the already imported ``verdigris.X``."""

    def __init__(self, module):
        self.module = module
        self.own_spec = getattr(module, '__spec__', None)

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        # Already executed, under its own name. The import system has just set __spec__ to
        # the alias's spec: give the module its own back (reload() and pickling need it).
        module.__spec__ = self.own_spec


class _GeventAliasFinder:
    """The :data:`sys.meta_path` finder that maps ``gevent[.X]`` to ``verdigris[.X]``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _ALIAS and not fullname.startswith(_ALIAS + '.'):
            return None
        real_name = _TARGET + fullname[len(_ALIAS):]
        try:
            module = importlib.import_module(real_name)
        except ModuleNotFoundError as exc:
            if exc.name != real_name:
                raise  # something verdigris.X itself imports is missing: that is the error
            raise ModuleNotFoundError('No module named %r (verdigris has no %r)'
                                      % (fullname, real_name), name=fullname) from None
        # The module keeps its own __name__, __loader__ and __file__: importlib fills in only
        # the attributes that are missing (and __spec__, which the loader puts back).
        spec = ModuleSpec(fullname, _AliasLoader(module),
                          is_package=hasattr(module, '__path__'))
        return spec

    def invalidate_caches(self):
        pass

    def __repr__(self):
        return '<verdigris alias finder: gevent -> verdigris>'


_finder = _GeventAliasFinder()


def install_as_gevent():
    """Make ``import gevent`` and ``import gevent.X`` give verdigris's modules.

    Call it before anything imports gevent. Calling it again does nothing.

    :raises RuntimeError: if the real gevent is already imported in this process (its
        greenlets, hub and patches cannot be mixed with verdigris's).
    """
    already = sys.modules.get(_ALIAS)
    target = importlib.import_module(_TARGET)
    if already is not None and already is not target:
        raise RuntimeError(
            'install_as_gevent(): the real gevent is already imported (%s); call '
            'install_as_gevent() before anything imports gevent'
            % (getattr(already, '__file__', None) or already,))
    real = [name for name, module in list(sys.modules.items())
            if name.startswith(_ALIAS + '.') and module is not None
            and not getattr(module, '__name__', '').startswith(_TARGET)]
    if real:
        raise RuntimeError('install_as_gevent(): gevent modules are already imported: %s'
                           % ', '.join(sorted(real)))
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    sys.modules[_ALIAS] = target
