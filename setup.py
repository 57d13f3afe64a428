"""Package layout only (metadata is in pyproject.toml): the Hydra configs in the top-level conf/ ship
inside the package as ``mtlheads.conf``, so a non-editable install finds them."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "mtlheads.conf"],
    package_dir={"": "src", "mtlheads.conf": "conf"},
    package_data={"mtlheads": ["resources/**/*"], "mtlheads.conf": ["**/*.yaml"]},
)
