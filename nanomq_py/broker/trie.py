"""Subscription trie: topic filter -> subscriptions, and topic -> who receives it.

One node per topic level; `+` and `#` are ordinary children looked up at match
time. Matching costs O(levels x wildcard branches), never a scan of all
subscriptions. Results are cached per topic name and the cache is dropped on
any subscribe/unsubscribe; it is bounded, so a publisher cycling through
random topics only costs its own matches.
"""

from __future__ import annotations

from ..mqtt.topics import split_shared

_CACHE_LIMIT = 4096


class Subscription:
    """One subscription of one session. `group` is set for shared subscriptions."""

    __slots__ = ("session", "filter", "opts", "sub_id", "group")

    def __init__(self, session, flt, opts, sub_id=None, group=None):
        self.session = session
        self.filter = flt  # the filter as the client wrote it ($share/... included)
        self.opts = opts  # mqtt.packets.SubOptions
        self.sub_id = sub_id  # v5 Subscription Identifier or None
        self.group = group


class SharedGroup:
    """Members of one `$share/<group>/<filter>`; each message goes to one of them."""

    __slots__ = ("name", "members", "next")

    def __init__(self, name):
        self.name = name
        self.members = []
        self.next = 0

    def pick(self, exclude=None):
        """Round robin over members, skipping those whose client is offline.
        Falls back to an offline member (whose session queues) when none is online.
        `exclude` is a session never picked (a member handing its messages over)."""
        members = self.members
        count = len(members)
        start = self.next
        fallback = None
        for step in range(count):
            index = (start + step) % count
            sub = members[index]
            if sub.session is exclude:
                continue
            if sub.session.client is not None:
                self.next = (index + 1) % count
                return sub
            if fallback is None:
                fallback = index
        if fallback is None:
            return None
        self.next = (fallback + 1) % count
        return members[fallback]


class Delivery:
    """What one session receives for one topic, overlapping subscriptions merged:
    the highest QoS, every subscription identifier, No Local only if all say so."""

    __slots__ = ("session", "qos", "sub_ids", "no_local", "retain_as_published")

    def __init__(self, session, qos, sub_ids, no_local, retain_as_published):
        self.session = session
        self.qos = qos
        self.sub_ids = sub_ids
        self.no_local = no_local
        self.retain_as_published = retain_as_published


class _Node:
    __slots__ = ("children", "subs", "groups")

    def __init__(self):
        self.children = {}
        self.subs = {}  # client_id -> Subscription
        self.groups = {}  # group name -> SharedGroup


class SubscriptionTrie:
    def __init__(self):
        self._root = _Node()
        self._cache = {}
        self.count = 0

    def add(self, sub):
        """Add or replace the subscription of sub.session to sub.filter. Returns True if new."""
        group, real = split_shared(sub.filter)
        node = self._root
        for level in real.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        self._cache.clear()
        cid = sub.session.client_id
        if group is None:
            existed = cid in node.subs
            node.subs[cid] = sub
        else:
            shared = node.groups.get(group)
            if shared is None:
                shared = node.groups[group] = SharedGroup(group)
            sub.group = shared
            for index, member in enumerate(shared.members):
                if member.session.client_id == cid:
                    shared.members[index] = sub
                    return False
            existed = False
            shared.members.append(sub)
        if not existed:
            self.count += 1
        return not existed

    def remove(self, sub):
        """Remove this session's subscription to sub.filter; prunes empty nodes."""
        group, real = split_shared(sub.filter)
        path = [self._root]
        for level in real.split("/"):
            node = path[-1].children.get(level)
            if node is None:
                return False
            path.append(node)
        node = path[-1]
        cid = sub.session.client_id
        if group is None:
            if node.subs.pop(cid, None) is None:
                return False
        else:
            shared = node.groups.get(group)
            if shared is None:
                return False
            before = len(shared.members)
            shared.members = [m for m in shared.members if m.session.client_id != cid]
            if len(shared.members) == before:
                return False
            if not shared.members:
                del node.groups[group]
        self.count -= 1
        self._cache.clear()
        levels = real.split("/")
        for depth in range(len(levels), 0, -1):
            child = path[depth]
            if child.children or child.subs or child.groups:
                break
            del path[depth - 1].children[levels[depth - 1]]
        return True

    def has_subscriptions_under(self, first_level):
        """Whether any filter starts with this literal level (e.g. "$SYS")."""
        return first_level in self._root.children

    def match(self, topic, cache=True):
        """(deliveries, shared_groups) for a topic name; cached until the trie
        changes, unless `cache` is False (topics seen once, e.g. per client id)."""
        hit = self._cache.get(topic)
        if hit is not None:
            return hit
        subs = []
        groups = []
        levels = topic.split("/")
        self._collect(self._root, levels, 0, subs, groups, topic.startswith("$"))
        if len(subs) <= 1:
            deliveries = [
                Delivery(
                    s.session,
                    s.opts.qos,
                    (s.sub_id,) if s.sub_id else None,
                    s.opts.no_local,
                    s.opts.retain_as_published,
                )
                for s in subs
            ]
        else:
            deliveries = _merge(subs)
        result = (deliveries, groups)
        if not cache:
            return result
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = result
        return result

    def _collect(self, node, levels, depth, subs, groups, dollar):
        if depth == len(levels):
            if node.subs:
                subs.extend(node.subs.values())
            if node.groups:
                groups.extend(node.groups.values())
            hash_node = node.children.get("#")
            if hash_node is not None:
                subs.extend(hash_node.subs.values())
                groups.extend(hash_node.groups.values())
            return
        children = node.children
        wild_ok = not (dollar and depth == 0)
        if wild_ok:
            hash_node = children.get("#")
            if hash_node is not None:
                subs.extend(hash_node.subs.values())
                groups.extend(hash_node.groups.values())
            plus = children.get("+")
            if plus is not None:
                self._collect(plus, levels, depth + 1, subs, groups, dollar)
        child = children.get(levels[depth])
        if child is not None:
            self._collect(child, levels, depth + 1, subs, groups, dollar)


def _merge(subs):
    merged = {}
    for s in subs:
        d = merged.get(s.session.client_id)
        if d is None:
            merged[s.session.client_id] = Delivery(
                s.session,
                s.opts.qos,
                (s.sub_id,) if s.sub_id else None,
                s.opts.no_local,
                s.opts.retain_as_published,
            )
            continue
        d.qos = max(d.qos, s.opts.qos)
        if s.sub_id:
            d.sub_ids = (d.sub_ids or ()) + (s.sub_id,)
        d.no_local = d.no_local and s.opts.no_local
        d.retain_as_published = d.retain_as_published or s.opts.retain_as_published
    return list(merged.values())
