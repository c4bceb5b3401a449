"""Version constraint strings of the package ecosystems' own advisory feeds.

GitHub/GitLab advisories (and trivy's database built from them) write affected and patched
versions as constraint strings in each ecosystem's syntax: ``>=1.2, <2.0``, ``^1.2.3``,
``~> 1.5.5``, ``(,1.2.3]``. ``satisfies(scheme, version, constraint)`` evaluates one such
string; ``is_vulnerable`` applies trivy's rule (pkg/detector/library/compare/compare.go):
vulnerable if the version matches one of the vulnerable constraints (or none are given) and
none of the patched/unaffected ones; an unparsable version or constraint gives "not
vulnerable" (trivy logs and skips it), and an empty constraint string means "vulnerable".

Syntax per scheme (``||`` separates alternatives everywhere; within one alternative
comparators are ANDed and may be separated by spaces or commas):

* SEMVER (npm): node-semver ranges: hyphen ranges, x-ranges, ``~``, ``^``, comparators,
  with node-semver's pre-release rule (a pre-release only satisfies a set that names a
  pre-release of the same major.minor.patch, unless ``include_prerelease``);
* PEP440: PEP 440 specifiers, a bare version meaning ``==``; pre-releases are included (an
  installed pre-release must be matched); ``allow_local_specifier`` compares local versions
  (``+sp1``) in ordered comparisons, as trivy's AllowLocalSpecifier option does;
* MAVEN: Maven version ranges ``[1.0,2.0)``, ``(,1.0]``, ``[1.2]`` (several joined by commas),
  or comparators; a bare version is an exact match (trivy's "soft requirement");
* RUBYGEMS: Gem::Requirement operators including the pessimistic ``~>``;
* any other scheme: comparators ``= != < <= > >=`` over ``compare``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, Specifier
from packaging.version import Version

from scanning.errors import ConstraintError
from scanning.versions import VersionError, VersionScheme, compare, sort_key
from scanning.versions._misc import pep440_key
from scanning.versions._rubygems import gem_compare_segments, gem_segments
from scanning.versions._semver import semver_key

_OPS = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
    "=": lambda c: c == 0,
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
}
_COMPARATOR = re.compile(r"^(<=|>=|!=|==|<|>|=)?\s*(\S+)$")


def _alternatives(constraint: str) -> list[str]:
    return [part.strip() for part in constraint.split("||")]


def _tokens(alternative: str) -> list[str]:
    # "> = 1.2" and ">= 1.2": glue operators to their version, then split on spaces/commas
    glued = re.sub(r"(~>|~=|===|<=|>=|!=|==|<|>|=|\^|~)\s+", r"\1", alternative)
    return [t for t in re.split(r"[\s,]+", glued) if t]


# ---------------------------------------------------------------- generic comparators


def _generic_satisfies(scheme: VersionScheme, version: str, constraint: str) -> bool:
    for alternative in _alternatives(constraint):
        tokens = _tokens(alternative)
        if not tokens:
            raise ConstraintError(f"empty constraint in {constraint!r}")
        if all(_generic_token(scheme, version, token) for token in tokens):
            return True
    return False


def _generic_token(scheme: VersionScheme, version: str, token: str) -> bool:
    if token == "*":
        return True
    match = _COMPARATOR.match(token)
    if match is None:
        raise ConstraintError(f"not a comparator: {token!r}")
    op, bound = match[1] or "=", match[2]
    if not bound[0].isalnum():
        raise ConstraintError(f"not a comparator: {token!r}")
    return bool(_OPS[op](compare(scheme, version, bound)))


# ---------------------------------------------------------------- Maven ranges

_MAVEN_RANGE = re.compile(r"([\[(])([^\[\]()]*)([\])])")


def _maven_satisfies(version: str, constraint: str) -> bool:
    for alternative in _alternatives(constraint):
        if "[" in alternative or "(" in alternative:
            if _maven_ranges(version, alternative):
                return True
        elif _generic_satisfies(VersionScheme.MAVEN, version, alternative):
            return True
    return False


def _maven_ranges(version: str, text: str) -> bool:
    rest = _MAVEN_RANGE.sub("", text).replace(",", "").strip()
    if rest:
        raise ConstraintError(f"not a Maven version range: {text!r}")
    for opening, body, closing in _MAVEN_RANGE.findall(text):
        bounds = [b.strip() for b in body.split(",")]
        if len(bounds) == 1:
            if opening != "[" or closing != "]" or not bounds[0]:
                raise ConstraintError(f"not a Maven version range: {text!r}")
            if compare(VersionScheme.MAVEN, version, bounds[0]) == 0:
                return True
            continue
        if len(bounds) != 2:
            raise ConstraintError(f"not a Maven version range: {text!r}")
        low, high = bounds
        if low:
            c = compare(VersionScheme.MAVEN, version, low)
            if c < 0 or (c == 0 and opening == "("):
                continue
        if high:
            c = compare(VersionScheme.MAVEN, version, high)
            if c > 0 or (c == 0 and closing == ")"):
                continue
        return True
    return False


# ---------------------------------------------------------------- RubyGems


def _gem_satisfies(version: str, constraint: str) -> bool:
    installed = gem_segments(version)
    for alternative in _alternatives(constraint):
        tokens = _tokens(alternative)
        if not tokens:
            raise ConstraintError(f"empty constraint in {constraint!r}")
        if all(_gem_token(installed, token) for token in tokens):
            return True
    return False


def _gem_token(installed: tuple[int | str, ...], token: str) -> bool:
    match = re.match(r"^(~>|<=|>=|!=|<|>|=)?(\S+)$", token)
    if match is None or not match[2][0].isdigit():
        raise ConstraintError(f"not a RubyGems requirement: {token!r}")
    op, bound = match[1] or "=", gem_segments(match[2])
    if op != "~>":
        return bool(_OPS[op](gem_compare_segments(installed, bound)))
    # ~> X.Y.Z means >= X.Y.Z and < X.(Y+1) (Gem::Version#bump on the release part)
    first_string = next((i for i, s in enumerate(bound) if isinstance(s, str)), len(bound))
    release = list(bound[:first_string]) or [0]
    if len(release) > 1:
        release.pop()
    release[-1] = int(release[-1]) + 1
    installed_release = installed[
        : next((i for i, s in enumerate(installed) if isinstance(s, str)), len(installed))
    ]
    return (
        gem_compare_segments(installed, bound) >= 0
        and gem_compare_segments(tuple(installed_release), tuple(release)) < 0
    )


# ---------------------------------------------------------------- PEP 440


def _pep440_satisfies(
    version: str, constraint: str, *, allow_local: bool, prereleases: bool | None
) -> bool:
    installed = pep440_key(version)
    for alternative in _alternatives(constraint):
        tokens = _tokens(alternative)
        if not tokens:
            raise ConstraintError(f"empty constraint in {constraint!r}")
        if all(
            _pep440_token(installed, t, allow_local=allow_local, prereleases=prereleases)
            for t in tokens
        ):
            return True
    return False


def _pep440_token(
    installed: Version,
    token: str,
    *,
    allow_local: bool,
    prereleases: bool | None,
    spec_prereleases: bool | None = None,
) -> bool:
    if token == "*":
        return True
    if token[0].isdigit():
        token = "==" + token
    try:
        specifier = Specifier(
            token, prereleases=prereleases if spec_prereleases is None else spec_prereleases
        )
    except InvalidSpecifier as error:
        match = _COMPARATOR.match(token)
        if not allow_local or match is None or "+" not in token:
            raise ConstraintError(f"not a PEP 440 specifier: {token!r}") from error
        return bool(_OPS[match[1] or "=="](_cmp_versions(installed, pep440_key(match[2]))))
    if allow_local and installed.local and specifier.operator in ("<", "<=", ">", ">="):
        # compare with the local label, as AllowLocalSpecifier does
        bound = pep440_key(specifier.version)
        return bool(_OPS[specifier.operator](_cmp_versions(installed, bound)))
    return specifier.contains(installed, prereleases=prereleases)


def _cmp_versions(a: Version, b: Version) -> int:
    return (a > b) - (a < b)


def pep440_specifier_contains(
    specifier: str,
    version: str,
    *,
    prereleases: bool | None = True,
    spec_prereleases: bool | None = None,
) -> bool:
    """One PEP 440 specifier (``>=1.0``, ``~=2.2``, ``==1.*``) against a version, with
    packaging's pre-release policy: ``Specifier(spec, prereleases=spec_prereleases)
    .contains(version, prereleases=prereleases)``."""
    return _pep440_token(
        pep440_key(version),
        specifier,
        allow_local=False,
        prereleases=prereleases,
        spec_prereleases=spec_prereleases,
    )


# ---------------------------------------------------------------- npm (node-semver)

_X = r"(?:0|[1-9][0-9]*|[0-9]+|x|X|\*)"
_PARTIAL = re.compile(
    rf"^[v=\s]*(?P<major>{_X})(?:\.(?P<minor>{_X})(?:\.(?P<patch>{_X})"
    r"(?:(?P<dash>-)?(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?$"
)


@dataclass(frozen=True, slots=True)
class _Comparator:
    op: str  # "" = any version
    version: str = ""

    def test(self, version: str) -> bool:
        if not self.op:
            return True
        ka, kb = semver_key(version), semver_key(self.version)
        return bool(_OPS[self.op]((ka > kb) - (ka < kb)))


_ANY = _Comparator("")


def _is_x(part: str | None) -> bool:
    return part is None or part in ("x", "X", "*")


def _partial(text: str, loose: bool) -> re.Match[str]:
    match = _PARTIAL.match(text)
    if match is None or (match["pre"] and not match["dash"] and not loose):
        raise ConstraintError(f"not a semver range part: {text!r}")
    if not loose and text[:1] in ("v", "=") and not re.match(r"^[v=]+[0-9xX*]", text):
        raise ConstraintError(f"not a semver range part: {text!r}")
    return match


def _full(match: re.Match[str]) -> str:
    pre = f"-{match['pre']}" if match["pre"] else ""
    return f"{match['major']}.{match['minor']}.{match['patch']}{pre}"


def _npm_token(token: str, loose: bool, include_pre: bool) -> list[_Comparator]:
    z = "-0" if include_pre else ""
    if token in ("", "*", "x", "X"):
        return [_Comparator(">=", "0.0.0-0")] if include_pre else [_ANY]
    for prefix, kind in (("~>", "~"), ("~", "~"), ("^", "^")):
        if token.startswith(prefix):
            m = _partial(token[len(prefix) :], loose)
            major, minor, patch, pre = m["major"], m["minor"], m["patch"], m["pre"]
            if _is_x(major):
                return [_Comparator(">=", "0.0.0-0")] if include_pre else [_ANY]
            M = int(major)
            if _is_x(minor):
                return [_Comparator(">=", f"{M}.0.0{z}"), _Comparator("<", f"{M + 1}.0.0-0")]
            m_ = int(minor)
            if _is_x(patch):
                upper = f"{M + 1}.0.0-0" if kind == "^" and M != 0 else f"{M}.{m_ + 1}.0-0"
                return [_Comparator(">=", f"{M}.{m_}.0{z}"), _Comparator("<", upper)]
            p = int(patch)
            low = f"{M}.{m_}.{p}" + (f"-{pre}" if pre else "")
            if kind == "~":
                upper = f"{M}.{m_ + 1}.0-0"
            elif M != 0:
                upper = f"{M + 1}.0.0-0"
            elif m_ != 0:
                upper = f"0.{m_ + 1}.0-0"
            else:
                upper = f"0.0.{p + 1}-0"
            return [_Comparator(">=", low), _Comparator("<", upper)]
    op_match = re.match(r"^(<=|>=|<|>|=)?(.*)$", token)
    assert op_match is not None
    op = op_match[1] or ""
    m = _partial(op_match[2], loose)
    major, minor, patch = m["major"], m["minor"], m["patch"]
    any_x = _is_x(major) or _is_x(minor) or _is_x(patch)
    if op == "=" and any_x:
        op = ""
    if not any_x:
        return [_Comparator(op or "=", _full(m))]
    if _is_x(major):
        if op in (">", "<"):
            return [_Comparator("<", "0.0.0-0")]
        return [_Comparator(">=", "0.0.0-0")] if include_pre else [_ANY]
    M = int(major)
    m_ = 0 if _is_x(minor) else int(minor)
    if op:
        pr = z
        p = 0
        if op == ">":
            op = ">="
            if _is_x(minor):
                M, m_ = M + 1, 0
            else:
                m_ += 1
        elif op == "<=":
            op = "<"
            if _is_x(minor):
                M += 1
            else:
                m_ += 1
        if op == "<":
            pr = "-0"
        return [_Comparator(op, f"{M}.{m_}.{p}{pr}")]
    if _is_x(minor):
        return [_Comparator(">=", f"{M}.0.0{z}"), _Comparator("<", f"{M + 1}.0.0-0")]
    return [_Comparator(">=", f"{M}.{m_}.0{z}"), _Comparator("<", f"{M}.{m_ + 1}.0-0")]


def _npm_hyphen(low: str, high: str, loose: bool, include_pre: bool) -> list[_Comparator]:
    out: list[_Comparator] = []
    lm, hm = _partial(low, loose), _partial(high, loose)
    z = "-0" if include_pre else ""
    if not _is_x(lm["major"]):
        if _is_x(lm["minor"]):
            out.append(_Comparator(">=", f"{lm['major']}.0.0{z}"))
        elif _is_x(lm["patch"]):
            out.append(_Comparator(">=", f"{lm['major']}.{lm['minor']}.0{z}"))
        else:
            out.append(_Comparator(">=", _full(lm)))
    if not _is_x(hm["major"]):
        if _is_x(hm["minor"]):
            out.append(_Comparator("<", f"{int(hm['major']) + 1}.0.0-0"))
        elif _is_x(hm["patch"]):
            out.append(_Comparator("<", f"{hm['major']}.{int(hm['minor']) + 1}.0-0"))
        elif hm["pre"]:
            out.append(_Comparator("<=", _full(hm)))
        elif include_pre:
            out.append(_Comparator("<", f"{hm['major']}.{hm['minor']}.{int(hm['patch']) + 1}-0"))
        else:
            out.append(_Comparator("<=", _full(hm)))
    return out or [_ANY]


_HYPHEN = re.compile(r"^\s*(\S+)\s+-\s+(\S+)\s*$")


def npm_parse_range(
    constraint: str, *, loose: bool = False, include_prerelease: bool = False
) -> list[list[_Comparator]]:
    sets: list[list[_Comparator]] = []
    for alternative in _alternatives(constraint):
        hyphen = _HYPHEN.match(alternative)
        if hyphen:
            sets.append(_npm_hyphen(hyphen[1], hyphen[2], loose, include_prerelease))
            continue
        comparators: list[_Comparator] = []
        for token in _tokens(alternative) or [""]:
            comparators.extend(_npm_token(token, loose, include_prerelease))
        sets.append(comparators)
    return sets


def _npm_test_set(
    comparators: Sequence[_Comparator], version: str, include_prerelease: bool
) -> bool:
    if not all(c.test(version) for c in comparators):
        return False
    key = semver_key(version)
    if key[4] != (1,) and not include_prerelease:
        # node-semver: a pre-release only matches a set naming a pre-release of the same
        # [major, minor, patch]
        for comparator in comparators:
            if comparator.op:
                bound = semver_key(comparator.version)
                if bound[4] != (1,) and bound[:3] == key[:3]:
                    return True
        return False
    return True


_NPM_STRICT = re.compile(
    r"^v?(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_NPM_LOOSE = re.compile(
    r"^[v=\s]*[0-9]+\.[0-9]+\.[0-9]+"
    r"(?:-?[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def _npm_version(version: str, loose: bool) -> str:
    """node-semver's version parse: strict allows one leading "v", loose also "=" and
    spaces and a pre-release without its hyphen."""
    text = version.strip()
    if (_NPM_LOOSE if loose else _NPM_STRICT).match(text) is None:
        raise VersionError(f"not a semantic version: {version!r}")
    semver_key(text)
    return text


def npm_satisfies(
    version: str, constraint: str, *, loose: bool = False, include_prerelease: bool = False
) -> bool:
    """node-semver ``satisfies(version, range, {loose, includePrerelease})``."""
    text = _npm_version(version, loose)
    sets = npm_parse_range(constraint, loose=loose, include_prerelease=include_prerelease)
    return any(_npm_test_set(s, text, include_prerelease) for s in sets)


def npm_outside(
    version: str,
    constraint: str,
    direction: str,
    *,
    loose: bool = False,
    include_prerelease: bool = False,
) -> bool:
    """node-semver ``gtr`` (direction ">") / ``ltr`` ("<"): above/below every match."""
    text = _npm_version(version, loose)
    if npm_satisfies(text, constraint, loose=loose, include_prerelease=include_prerelease):
        return False

    def cmp(a: str, b: str) -> int:
        ka, kb = semver_key(a), semver_key(b)
        result = (ka > kb) - (ka < kb)
        return result if direction == ">" else -result

    comp, ecomp = direction, direction + "="
    for comparators in npm_parse_range(
        constraint, loose=loose, include_prerelease=include_prerelease
    ):
        normalised = [c if c.op else _Comparator(">=", "0.0.0") for c in comparators]
        high = low = normalised[0]
        for comparator in normalised:
            if cmp(comparator.version, high.version) > 0:
                high = comparator
            elif cmp(comparator.version, low.version) < 0:
                low = comparator
        if high.op in (comp, ecomp):
            return False
        if low.op in ("", "=", comp) and cmp(text, low.version) <= 0:
            return False
        if low.op == ecomp and cmp(text, low.version) < 0:
            return False
    return True


# ---------------------------------------------------------------- entry points


def satisfies(
    scheme: VersionScheme,
    version: str,
    constraint: str,
    *,
    allow_local_specifier: bool = False,
) -> bool:
    """Does ``version`` satisfy ``constraint`` (ecosystem syntax, see module docstring)?"""
    if scheme is VersionScheme.SEMVER:
        # an installed pre-release must be matched by the ranges that contain it
        return npm_satisfies(version, constraint, loose=True, include_prerelease=True)
    if scheme is VersionScheme.PEP440:
        return _pep440_satisfies(
            version, constraint, allow_local=allow_local_specifier, prereleases=True
        )
    if scheme is VersionScheme.MAVEN:
        sort_key(scheme, version)
        return _maven_satisfies(version, constraint)
    if scheme is VersionScheme.RUBYGEMS:
        return _gem_satisfies(version, constraint)
    return _generic_satisfies(scheme, version, constraint)


def is_vulnerable(
    scheme: VersionScheme,
    version: str,
    *,
    vulnerable: Sequence[str] | None = None,
    patched: Sequence[str] | None = None,
    unaffected: Sequence[str] | None = None,
    allow_local_specifier: bool = False,
) -> bool:
    """trivy's IsVulnerable over ecosystem constraint strings (see module docstring)."""
    vulnerable = list(vulnerable or ())
    secure = list(patched or ()) + list(unaffected or ())
    if any(c == "" for c in vulnerable + list(patched or ())):
        return True
    matched = False
    try:
        if vulnerable:
            matched = satisfies(
                scheme,
                version,
                " || ".join(vulnerable),
                allow_local_specifier=allow_local_specifier,
            )
            if not matched:
                return False
        if not secure:
            return matched
        return not satisfies(
            scheme, version, " || ".join(secure), allow_local_specifier=allow_local_specifier
        )
    except VersionError:
        return False
