# The conveyor image used by compose.yaml: one image, one process kind per container.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY db db
COPY pipeline pipeline
COPY ingest ingest
COPY conveyor conveyor
COPY deploy deploy
RUN pip install --no-cache-dir -c constraints.txt .
ENTRYPOINT []
CMD ["conveyor", "--help"]
