# A gridchain image for amd64 and arm64 (a Raspberry Pi is the target peer device):
#   docker build -t gridchain .
#   docker buildx build --platform linux/amd64,linux/arm64 -t gridchain .
# The same image runs `genesis init`, `node run`, `gateway run`, the wallet, the meter bridge
# and the meter simulator.  Every base is multi-arch; wheels are built in a first stage with a
# compiler and LevelDB's headers, because plyvel has no arm64 wheel (it builds against the
# system LevelDB there, hence libleveldb1d in the runtime stage).
FROM python:3.11-slim-bookworm AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libleveldb-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY gridchain ./gridchain
COPY protocol ./protocol
COPY api ./api
COPY market ./market
COPY consensus ./consensus
COPY node ./node
COPY genesis ./genesis
COPY wallet ./wallet
COPY meterbridge ./meterbridge
COPY bench ./bench
COPY gateway ./gateway
COPY agent ./agent
RUN pip wheel --no-cache-dir -c constraints.txt --wheel-dir /wheels .

FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends libleveldb1d \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 gridchain \
    && mkdir /testnet \
    && chown gridchain:gridchain /testnet
# A named volume mounted at /testnet starts as a copy of this directory, owner included, so
# the chain's files are written by uid 10001 and never need root.
VOLUME ["/testnet"]
WORKDIR /home/gridchain
USER gridchain
ENTRYPOINT ["gridchain"]
CMD ["--help"]
