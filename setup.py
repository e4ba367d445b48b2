"""Packaging for nanomq_py: one pure-Python wheel (py3-none-any).

The default configuration, the systemd unit and the init script are installed as
data files under <prefix>/share/nanomq_py/ (e.g. /usr/local/share/nanomq_py/nanomq.conf).
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "nanomq_py" / "__init__.py").read_text(), re.M
).group(1)
README = HERE / "README.md"

setup(
    name="nanomq_py",
    version=VERSION,
    description="A NanoMQ-compatible MQTT 3.1/3.1.1/5.0 broker with WebHook integration, on gevent",
    long_description=README.read_text(encoding="utf-8") if README.exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["nanomq_py", "nanomq_py.*"]),
    package_data={"nanomq_py.http_api": ["static/*.html"]},  # the status page, read on request
    # The ranges the code is tested with, lowest versions included (README: "Dependencies"):
    # an offline wheelhouse built later must not pick a major release nobody has tried.
    # python-dateutil: without it pyhocon reads `10m` as 10 minutes, not the months that the
    # size keys take as 10 MB (NanoMQ's meaning), so `max_packet_size = 10m` would be refused.
    install_requires=[
        "gevent>=22.10.2,<27",
        "urllib3>=2.0.2,<3",
        "pyhocon>=0.3.59,<0.4",
        "python-dateutil>=2.8.2,<3",
        "wsproto>=1.2,<2",
    ],
    extras_require={
        "test": ["pytest", "paho-mqtt>=2", "hypothesis", "cryptography", "prometheus_client", "selenium"]
    },
    entry_points={"console_scripts": ["nanomq=nanomq_py.cli:main", "nanomq-passwd=nanomq_py.passwd:main"]},
    data_files=[
        ("share/nanomq_py", ["etc/nanomq.conf", "etc/nanomq.service"]),
        ("share/nanomq_py/init.d", ["etc/init.d/nanomq"]),
    ],
    zip_safe=False,
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Operating System :: POSIX :: Linux",
        "Topic :: Internet",
        "Framework :: Gevent",
    ],
)
