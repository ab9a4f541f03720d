"""Registration of every lgdea module into the lgdea registries."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every lgdea module so that its components register themselves.

    Args:
        init_default_scope: make ``lgdea`` the default scope, as mmpretrain does for its own.
    """
    # mmpretrain's registries load lazily; lgdea's child registries only see what is loaded.
    import mmpretrain.utils
    mmpretrain.utils.register_all_modules(init_default_scope=False)
    import lgdea.datasets  # noqa: F401
    import lgdea.engine  # noqa: F401
    import lgdea.evaluation  # noqa: F401
    import lgdea.evidence  # noqa: F401
    import lgdea.models  # noqa: F401
    import lgdea.visualization  # noqa: F401

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('lgdea', scope_name='lgdea')
    elif current.scope_name != 'lgdea':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "lgdea"; '
                      '`register_all_modules` forces it to "lgdea".')
        DefaultScope.get_instance(f'lgdea-{datetime.datetime.now()}', scope_name='lgdea')
