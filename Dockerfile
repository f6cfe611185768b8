# One image for every component: the command decides what a container is.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 LMS_LOG_FORMAT=json
WORKDIR /app
COPY pyproject.toml README.md ./
COPY lms ./lms
COPY intake ./intake
COPY workers ./workers
COPY models ./models
COPY templates_email ./templates_email
COPY examples ./examples
RUN pip install . && useradd --system --home /app lms && mkdir -p /app/var && chown lms /app/var
USER lms
EXPOSE 2525
ENTRYPOINT ["lms"]
CMD ["run"]
