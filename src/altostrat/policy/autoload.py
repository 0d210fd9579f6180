"""Import every module of a policy folder so that its @register decorators run."""

import importlib
import pkgutil


def import_all(package_name: str, package_path: list[str]) -> None:
    for info in pkgutil.iter_modules(package_path):
        importlib.import_module(f"{package_name}.{info.name}")
