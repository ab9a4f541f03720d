"""Template plugin: importing it registers its components into the lgdea registries.

- MODELS: ``CLIPWithUniformityLoss``, ``UniformityLoss``

Configs load it with ``custom_imports = dict(imports=['lgdea',
'projects.example_project.example_project'])``.
"""
from .models import *  # noqa: F401,F403
