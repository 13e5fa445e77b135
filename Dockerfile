# A gridchain validator image: `docker build -t gridchain .`
# The same image runs `genesis init`, `node run`, `gateway run`, the wallet and the meter
# bridge.
FROM python:3.11-slim

WORKDIR /opt/gridchain
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
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --create-home --uid 10001 gridchain
USER gridchain
ENTRYPOINT ["gridchain"]
CMD ["--help"]
