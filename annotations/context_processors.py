from __future__ import annotations

from annotations import roles


def role_flags(request) -> dict[str, bool]:
    user = request.user
    return {
        "is_rater": roles.is_rater(user),
        "is_researcher": roles.is_researcher(user),
        "is_release_owner": roles.is_release_owner(user),
        "is_admin_role": roles.is_admin(user),
    }
