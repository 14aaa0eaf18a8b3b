"""Classes that saved models name: one name -> class table per kind of object.

A saved model's JSON config describes each object it holds (layers, learning-rate schedules) as
``{"class_name": name, "config": obj.get_config()}``; loading looks the name up in the
:class:`Registry` of that kind and calls the class's ``from_config``. Built-in classes register
themselves; users register their own subclasses with the kind's decorator
(``@cgru.register_layer``, ``@cgru.optimizers.schedules.register_schedule``).

:class:`BuiltinNames` is the fixed table of a kind whose ``get()`` takes a name or a saved
``{"class_name", "config"}`` but no user classes (initializers, losses, optimizers).
"""

from __future__ import annotations

import json
import threading
from typing import Any


class Registry:
    """The registered subclasses of ``base``, by name.

    ``kind``: what the classes are, in messages ("layer", "schedule"); ``decorator``: how users
    register one (``"cgru.register_layer"``), named in the messages that ask them to;
    ``base_name``: how users name ``base`` (``"cgru.Layer"``).
    """

    def __init__(self, kind: str, base: type, decorator: str, base_name: str) -> None:
        self.kind, self.base, self.decorator, self.base_name = kind, base, decorator, base_name
        self.classes: dict[str, type] = {}
        self.names: dict[type, str] = {}
        self.builtin: set[str] = set()
        self._lock = threading.Lock()

    def register(self, cls: type | None = None, *, name: str | None = None, override: bool = False):
        """Register ``cls`` under ``name`` (default: the class name); usable as a decorator with
        or without arguments.

        Registering the same class again, or a redefinition of it from the same module (a
        re-run notebook cell), replaces the entry; a different class under a taken name raises
        ValueError unless ``override=True``. Built-in names are never replaced without it.
        """
        short = self.decorator.rsplit(".", 1)[-1]

        def decorate(c: type) -> type:
            if not (isinstance(c, type) and issubclass(c, self.base)):
                raise TypeError(f"{short} expects a subclass of {self.base_name}, got {c!r}")
            key = name if name is not None else c.__name__
            if not isinstance(key, str) or not key:
                raise TypeError(f"{self.kind} name must be a non-empty string, got {key!r}")
            with self._lock:
                existing = self.classes.get(key)
                if existing is not None and existing is not c and not override:
                    same = (existing.__module__, existing.__qualname__) == (c.__module__, c.__qualname__)
                    if key in self.builtin or not same:
                        builtin = key in self.builtin
                        owner = f"the built-in {self.kind}" if builtin else f"another {self.kind} class"
                        raise ValueError(
                            f"cannot register {c.__module__}.{c.__qualname__} as {key!r}: that name "
                            f"belongs to {owner} {existing.__module__}.{existing.__qualname__}; pass "
                            f"{short}(name='yourpackage.{c.__name__}') to use another name, "
                            "or override=True to replace it"
                        )
                if existing is not None and existing is not c:
                    self.names.pop(existing, None)
                self.classes[key] = c
                self.names[c] = key
            return c

        if cls is not None:
            return decorate(cls)
        return decorate

    def register_builtin(self, cls: type) -> type:
        """Register one of cgru's own classes under its class name, protected from replacement."""
        self.register(cls)
        self.builtin.add(cls.__name__)
        return cls

    def name_of(self, cls: type) -> str | None:
        """The name ``cls`` is registered under, or None."""
        return self.names.get(cls)

    def get(self, name: Any) -> type:
        """The class registered as ``name``; ValueError naming the known ones otherwise."""
        cls = self.classes.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(
                f"unknown {self.kind} class {name!r}: register it with @{self.decorator} before "
                f"loading; registered: {sorted(self.classes)}"
            )
        return cls

    def serialize(self, obj: Any, label: str) -> dict:
        """``{"class_name", "config"}`` for an instance of a registered class; ValueError when
        its class is not registered, TypeError when its config is not JSON. ``label`` names the
        object in messages (e.g. ``"layer 'gru'"``)."""
        name = self.name_of(type(obj))
        if name is None:
            raise ValueError(
                f"{label} is a {type(obj).__name__}, which is not registered: decorate the class "
                f"with @{self.decorator} to save it"
            )
        config = obj.get_config()
        try:
            json.dumps(config)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"get_config() of {label} ({type(obj).__name__}) is not JSON-serialisable: {exc}"
            ) from None
        return {"class_name": name, "config": config}

    def deserialize(self, spec: Any) -> Any:
        """An instance from :meth:`serialize`'s output (other keys, e.g. Keras's ``module``,
        are ignored)."""
        if not isinstance(spec, dict) or "class_name" not in spec or not isinstance(spec.get("config"), dict):
            raise ValueError(
                f"a {self.kind} description must be {{'class_name': ..., 'config': {{...}}}}, got {spec!r}"
            )
        cls = self.get(spec["class_name"])
        obj = cls.from_config(dict(spec["config"]))
        if not isinstance(obj, self.base):
            raise TypeError(
                f"{spec['class_name']}.from_config returned {type(obj).__name__}, "
                f"not a {self.base_name}"
            )
        return obj


class BuiltinNames:
    """cgru's own classes of one kind, by class name and by alias, as a ``get()`` looks them up.

    ``kind``: what the classes are, in messages ("initializer"); ``aliases``: lower-case names
    (``"glorot_uniform"``); ``saved_aliases``: whether a saved ``class_name`` may be an alias
    too (in any case) rather than only a class name.
    """

    def __init__(self, kind: str, classes: Any, aliases: dict[str, type], saved_aliases: bool = True) -> None:
        self.kind = kind
        self.classes: dict[str, type] = {cls.__name__: cls for cls in classes}
        self.aliases = aliases
        self.saved_aliases = saved_aliases

    def by_name(self, name: str) -> type:
        """The class ``name`` names: an alias in any case, or a class name; ValueError listing
        the aliases otherwise."""
        cls = self.aliases.get(name.lower()) or self.classes.get(name)
        if cls is None:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {sorted(self.aliases)}")
        return cls

    def by_saved_name(self, name: Any) -> type:
        """The class a saved ``class_name`` names; ValueError listing the class names otherwise."""
        cls = self.classes.get(name)
        if cls is None and self.saved_aliases:
            cls = self.aliases.get(str(name).lower())
        if cls is None:
            raise ValueError(f"unknown {self.kind} class {name!r}; known: {sorted(self.classes)}")
        return cls

    def instance(self, identifier: Any) -> Any:
        """A new object for a name (made with no arguments) or a ``{"class_name", "config"}``
        dict (made by the class's ``from_config``); None for any other ``identifier``."""
        if isinstance(identifier, str):
            return self.by_name(identifier)()
        if isinstance(identifier, dict) and "class_name" in identifier:
            cls = self.by_saved_name(identifier["class_name"])
            return cls.from_config(dict(identifier.get("config") or {}))
        return None


__all__ = ["BuiltinNames", "Registry"]
