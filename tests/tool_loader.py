"""Load a script of ``tools/`` as a module, so tests call its ``main(argv)`` in process."""
import importlib.util
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name: str):
    """``tools/<name>.py`` as a fresh module (executed on every call)."""
    spec = importlib.util.spec_from_file_location(f'lgdea_tools_{name}',
                                                  osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
