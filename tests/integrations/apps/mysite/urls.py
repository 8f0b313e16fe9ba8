"""Routes: an include with a path converter, a regex route, a failure, a 503, a stream."""

from django.urls import include, path, re_path

from mysite import views

shop = [path("items/<int:item_id>/", views.item)]

urlpatterns = [
    path("shop/", include(shop)),
    re_path(r"^articles/(?P<year>[0-9]{4})/$", views.article),
    path("boom/", views.boom),
    path("upstream/", views.upstream),
    path("stream/", views.stream),
    path("astream/", views.astream),
]
