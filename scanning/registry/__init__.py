"""Image references, image sources (registries, OCI layouts, docker archives) and manifests.

Four sources, one small interface (``ImageSource``: fetch a manifest, fetch a small blob, stream
a large one):

* ``AcrSource``: Azure Container Registry through ``azure-containerregistry``'s
  ``ContainerRegistryClient`` with ``DefaultAzureCredential`` (managed identity in Azure). The
  SDK's pipeline brings ACR's AAD token exchange, retries (429/5xx, azure-core ``RetryPolicy``),
  manifest digest checks and chunked, digest-checked blob downloads.
* ``HttpRegistrySource``: any other registry (Distribution, Docker Hub, GHCR, Quay, Harbor...).
  The ACR SDK cannot serve these: its challenge policy only speaks ACR's ``/oauth2/exchange``
  flow, not the Docker token protocol (``WWW-Authenticate: Bearer realm=..., service=...,
  scope=...``, https://distribution.github.io/distribution/spec/auth/token/), and azure-core's
  ``PipelineClient`` offers no policy for that challenge either. So this is a small client on
  ``requests`` (the HTTP stack azure-core's default transport already uses): anonymous, basic and
  bearer-token challenge, retries with backoff on 429/5xx/resets/cut bodies, streamed blobs
  resumed with ``Range``. ``requests`` drops the ``Authorization`` header when a blob redirect
  leaves the registry's host (to S3 or Blob Storage signed URLs), which is what the
  Distribution spec expects.
* ``OciLayoutSource``: an OCI image layout directory (image-spec ``image-layout.md``).
* ``DockerArchiveSource``: a ``docker save`` tar, the legacy format (``<id>/layer.tar``) and
  Docker 25+ (OCI blobs plus ``manifest.json``); the tar may be gzipped.

Every request carries ``User-Agent: acr-scan/<version>`` so the registry's pull log can tell
the scanner's pulls from real ones. Plain http is used only for loopback hosts and hosts listed
in ``REGISTRY_INSECURE_HOSTS``. Both registry sources give every operation a total deadline and
a bounded number of attempts (``RegistryLimits``, from the ``REGISTRY_*`` settings).

``resolve_image`` turns a reference into one ``PlatformImage`` per platform (OCI index / Docker
manifest list → every platform; attestation and ``unknown/unknown`` entries are skipped and
reported), or an explicit ``unsupported`` (schema 1) / ``not_applicable`` (signatures, SBOMs,
Helm charts and other artifacts) result; a field of the wrong JSON type is a ``ManifestError``
naming its path. Manifests are capped at 4 MiB (the limit ACR and Distribution enforce),
configs at 8 MiB, JSON nesting at 64 levels; every digest is checked.

The package: ``base`` (constants, the source interface), ``reference``, ``files`` (OCI layouts,
docker archives), ``http`` (any registry), ``acr`` (Azure Container Registry), ``resolve``.
"""

from __future__ import annotations

from scanning.registry.acr import (  # noqa: F401
    AcrSource,
    azure_error,
)
from scanning.registry.base import (  # noqa: F401
    _COMPONENT,
    _DIGEST_RE,
    _DOCKER_HUB_NAMES,
    _REPOSITORY_RE,
    _RETRY_STATUSES,
    _TAG_RE,
    _TRANSIENT_REQUEST_ERRORS,
    ACCEPT,
    ATTESTATION_ANNOTATION,
    CHUNK_SIZE,
    DOCKER_CONFIG,
    DOCKER_HUB,
    DOCKER_HUB_API_HOST,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    IMAGE_CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_ARCHIVE_MEMBERS,
    MAX_CONFIG_BYTES,
    MAX_INDEX_DEPTH,
    MAX_JSON_DEPTH,
    MAX_MANIFEST_BYTES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    OCI_REF_NAME,
    SCHEMA1_TYPES,
    FetchedManifest,
    ImageSource,
    MiB,
    _check_config,
    _check_descriptor,
    _expect,
    _json_type,
    _manifest_from_bytes,
    _optional,
    check_json_depth,
    parse_json_document,
    sha256_digest,
    verify_digest,
)
from scanning.registry.files import (  # noqa: F401
    _ARCHIVE_BLOB_RE,
    DockerArchiveSource,
    OciLayoutSource,
    _file_chunks,
    _open_archive,
    _pick_layout_entry,
    _repo_tags,
)
from scanning.registry.http import (  # noqa: F401
    _CONTENT_RANGE_RE,
    BasicCredentials,
    HttpRegistrySource,
    RegistryLimits,
    _blob_size,
    _Deadline,
    _parse_challenge,
    _RetryLater,
    _Watchdog,
    parse_retry_after,
)
from scanning.registry.reference import (  # noqa: F401
    _ARCHIVE_INDEX_RE,
    ImageReference,
    ReferenceKind,
    _parse_archive_reference,
    api_host,
    is_acr,
    is_insecure_host,
    parse_reference,
)
from scanning.registry.resolve import (  # noqa: F401
    PlatformImage,
    ResolvedImage,
    ResolveStatus,
    SkippedManifest,
    _check_image_manifest,
    _check_top_level,
    _classify,
    _image,
    _is_layer_type,
    _matches,
    _NotAnImage,
    _platform_field,
    _platform_of,
    _walk_index,
    clean_instruction,
    layer_instructions,
    open_source,
    resolve_image,
)
