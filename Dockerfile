# quanteval: build on Debian bookworm with the same dependency script as the README and CI, then
# run `quanteval serve` as a non-root user from a slim image holding only the runtime libraries.
#
#   docker build -t quanteval .
#   docker run -p 8080:8080 -v quanteval-db:/var/lib/quanteval -v $PWD/models:/models quanteval
#
# Weights are looked up in /models ($QUANTEVAL_MODELS); without them the built-in synthetic
# checkpoints are served and labelled as such. Mount a server config and add
# `--config /etc/quanteval/server.json` to name datasets, weights and an API token.

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt ./
COPY bench bench
COPY configs configs
COPY engine engine
COPY scripts scripts
COPY server server
COPY storage storage
COPY tests tests
COPY web web
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build /build -j"$(nproc)" --target quanteval \
 && cmake --install /build

FROM debian:bookworm-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && useradd --system --create-home --home-dir /var/lib/quanteval --shell /usr/sbin/nologin quanteval \
 && mkdir -p /models && chown quanteval:quanteval /models
COPY --from=build /usr/local/bin/quanteval /usr/local/bin/quanteval
COPY --from=build /usr/local/share/quanteval /usr/local/share/quanteval
USER quanteval
ENV QUANTEVAL_DB=/var/lib/quanteval/quanteval.db \
    QUANTEVAL_MODELS=/models
VOLUME ["/var/lib/quanteval", "/models"]
EXPOSE 8080
CMD ["quanteval", "serve", "--listen", "0.0.0.0:8080"]
