# The conveyor image used by compose.yaml: one image, one process kind per container.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY cli cli
COPY api api
COPY ingest ingest
COPY pipeline pipeline
COPY db db
COPY deploy deploy
RUN pip install --no-cache-dir -c constraints.txt . && rm -rf /app/cli /app/api /app/ingest /app/pipeline /app/db /app/deploy
ENTRYPOINT []
CMD ["conveyor", "--help"]
