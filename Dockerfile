# abr with its PostgreSQL driver; the same image runs `abr run`, workers and Flower.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir '.[postgres,flower]'
ENV ABR_STORAGE_BASE_DIR=/data/output
VOLUME ["/data"]
ENTRYPOINT ["abr"]
CMD ["--help"]
