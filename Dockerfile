# Multi-stage build on Debian 12. (No Docker engine runs on the development machines: this file is
# written for places where one does; see README "Docker".)
FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake libboost1.81-dev \
      libboost-program-options1.81-dev libhiredis-dev libspdlog-dev libssl-dev catch2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY include include
COPY src src
COPY tests tests
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRESPCACHE_TESTS=OFF \
 && cmake --build build -j"$(nproc)" --target respcache

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libboost-program-options1.81.0 libhiredis0.14 \
      libspdlog1.10 libfmt9 libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/respcache /usr/local/bin/respcache
USER nobody
EXPOSE 8001
ENTRYPOINT ["/usr/local/bin/respcache"]
CMD ["--bind", "0.0.0.0", "--port", "8001"]
