"""Synthetic identities (names, addresses, telecom) for written Patients, from faker's tables.

Nothing here ever sees the patient table: identities are drawn from faker's public ``en_US``
name and address tables with a seeded generator, so no real name, identifier or address can
be copied into the output. Drawing from the tables directly (rather than calling ``Faker``
methods) is about 50 times faster and gives the same kind of values.

Some parts are fictional by construction, not just random:

- telephone numbers use the ``555-01xx`` block that the North American Numbering Plan keeps
  for fiction;
- ZIP codes are ``00000``-``00499``, a range the US Postal Service has never assigned;
- e-mail addresses are at ``example.com`` (reserved by RFC 2606).
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from functools import lru_cache
from typing import Any

__all__ = ["IdentityFactory"]

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=1)
def _tables() -> dict[str, Any]:
    from faker.providers.address.en_US import Provider as Address
    from faker.providers.person.en_US import Provider as Person

    def weighted(table: Any) -> tuple[list[str], list[float]]:
        names = list(table)
        if isinstance(table, dict):
            cum, total = [], 0.0
            for n in names:
                total += float(table[n])
                cum.append(total)
        else:
            cum = [float(i + 1) for i in range(len(names))]
        return names, cum

    return {
        "female": weighted(Person.first_names_female),
        "male": weighted(Person.first_names_male),
        "nonbinary": weighted(getattr(Person, "first_names_nonbinary", Person.first_names)),
        "family": weighted(Person.last_names),
        "street_suffix": list(Address.street_suffixes),
        "city_prefix": list(Address.city_prefixes),
        "city_suffix": list(Address.city_suffixes),
        "state": list(Address.states_abbr),
    }


class IdentityFactory:
    """Draw synthetic Patient identities (name, address, telecom) from faker's ``en_US`` tables.

    Parameters
    ----------
    seed : int
        Seed of the private generator: the same seed gives the same identities.

    Examples
    --------
    >>> f = IdentityFactory(0)
    >>> person = f.draw("female")
    >>> sorted(person)
    ['address', 'name', 'telecom']
    >>> person["address"][0]["postalCode"] < "00500"
    True
    """

    def __init__(self, seed: int) -> None:
        self._rnd = random.Random(seed)
        self._t = _tables()

    def _pick(self, key: str) -> str:
        names, cum = self._t[key]
        i = bisect_right(cum, self._rnd.random() * cum[-1])
        return names[i if i < len(names) else -1]  # type: ignore[no-any-return]

    def _city(self) -> str:
        r = self._rnd
        t = self._t
        form = r.randrange(4)  # faker's four en_US city formats
        if form == 3:
            return f"{self._pick('family')}{r.choice(t['city_suffix'])}"
        name = self._pick("female" if r.random() < 0.5 else "male")
        if form == 0:
            return f"{r.choice(t['city_prefix'])} {name}{r.choice(t['city_suffix'])}"
        if form == 1:
            return f"{r.choice(t['city_prefix'])} {name}"
        return f"{name}{r.choice(t['city_suffix'])}"

    def draw(self, gender: str | None) -> dict[str, Any]:
        """One identity: FHIR ``name``, ``telecom`` and ``address`` lists.

        Parameters
        ----------
        gender : str or None
            FHIR administrative gender; picks female, male or unisex given names.
        """
        r = self._rnd
        key = "female" if gender == "female" else "male" if gender == "male" else "nonbinary"
        given = [self._pick(key)]
        if r.random() < 0.3:
            given.append(self._pick(key))
        family = self._pick("family")
        street = f"{r.randint(1, 9999)} {self._pick('family') if r.random() < 0.5 else self._pick(key)} " \
                 f"{r.choice(self._t['street_suffix'])}"
        line = [street]
        if r.random() < 0.25:
            line.append(f"{'Apt.' if r.random() < 0.5 else 'Suite'} {r.randint(100, 999)}")
        address = {"use": "home", "type": "physical", "line": line, "city": self._city(),
                   "state": r.choice(self._t["state"]), "postalCode": f"00{r.randrange(500):03d}", "country": "US"}
        phone = f"{r.randint(201, 989)}-555-01{r.randrange(100):02d}"
        local = f"{_NON_ALNUM.sub('', given[0].lower())}.{_NON_ALNUM.sub('', family.lower())}{r.randrange(100)}"
        email = f"{local}@example.com"
        return {
            "name": [{"use": "official", "family": family, "given": given}],
            "telecom": [{"system": "phone", "value": phone, "use": "home"}, {"system": "email", "value": email}],
            "address": [address],
        }
