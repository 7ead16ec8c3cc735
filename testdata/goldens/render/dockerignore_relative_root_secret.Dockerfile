#syntax=docker/dockerfile:1.5
FROM localhost:5000/uv:0.5 as uv
FROM mambaorg/micromamba:2.0.3-debian12-slim as micromamba

FROM localhost:5000/debian-python:bookworm

WORKDIR /
USER root

RUN --mount=from=micromamba,source=/etc/ssl/certs/ca-certificates.crt,target=/tmp/ca-certificates.crt     [ -f /etc/ssl/certs/ca-certificates.crt ] ||     mkdir -p /etc/ssl/certs/ && cp /tmp/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

RUN id -u flytekit || useradd --create-home --shell /bin/bash flytekit
RUN chown -R flytekit /root && chown -R flytekit /home

RUN --mount=type=cache,sharing=locked,mode=0777,target=/opt/micromamba/pkgs,id=micromamba     --mount=from=micromamba,source=/usr/bin/micromamba,target=/usr/bin/micromamba     micromamba config set use_lockfiles False &&     ( micromamba create -n runtime --root-prefix /opt/micromamba     -c conda-forge      python=3.11      || micromamba install -n runtime --root-prefix /opt/micromamba     -c conda-forge      python=3.11  ) &&     chown -R flytekit /opt/micromamba


# Configure user space
ENV PATH="/opt/micromamba/envs/runtime/bin:$PATH"     UV_PYTHON=/opt/micromamba/envs/runtime/bin/python     UV_COMPILE_BYTECODE=1     UV_LINK_MODE=copy     FLYTE_SDK_RICH_TRACEBACKS=0     SSL_CERT_DIR=/etc/ssl/certs     PYTHONPATH=/root

RUN --mount=type=cache,sharing=locked,mode=0777,target=/root/.cache/uv,id=uv     --mount=from=uv,source=/uv,target=/usr/bin/uv     --mount=type=bind,target=requirements_uv.txt,src=requirements_uv.txt          uv pip install --requirement requirements_uv.txt


# Adds nvidia just in case it exists
ENV PATH="$PATH:/usr/local/nvidia/bin:/usr/local/cuda/bin"     LD_LIBRARY_PATH="/usr/local/nvidia/lib64:$LD_LIBRARY_PATH"

ENTRYPOINT ["python"]

COPY --chown=flytekit ./src /root



RUN --mount=type=cache,sharing=locked,mode=0777,target=/root/.cache/uv,id=uv     --mount=from=uv,source=/uv,target=/usr/bin/uv 

WORKDIR /root
SHELL ["/bin/bash", "-c"]

USER flytekit
RUN mkdir -p $HOME &&     echo "export PATH=$PATH" >> $HOME/.profile

# NOTE: Important to set this env var all the way at the bottom
# Otherwise the slightest change to an imagespec's ID would unnecessarily invalidate
# too many layers in the build cache.
ENV _F_IMG_ID=FTCYTzgMNhEASuB9-33Lrw
