FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY alembic ./alembic
RUN pip install --no-cache-dir .
ENV HOST=0.0.0.0 PORT=8080 ALEMBIC_CONFIG=/app/alembic.ini
EXPOSE 8080
CMD ["ticker-service", "serve"]
