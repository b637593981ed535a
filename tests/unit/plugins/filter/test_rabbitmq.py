import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nimbus.cloud.plugins.filter.rabbitmq import FilterModule

enabled = FilterModule().filters()["rabbitmq_enabled_plugins"]


@pytest.mark.parametrize("text, plugins", [
    pytest.param("", [], id="no file"),
    pytest.param(None, [], id="nothing read"),
    pytest.param("[].\n", [], id="none enabled"),
    pytest.param("[rabbitmq_management,rabbitmq_prometheus].\n", ["rabbitmq_management", "rabbitmq_prometheus"],
                 id="as rabbitmq-plugins writes it"),
    pytest.param("[rabbitmq_management,\n rabbitmq_prometheus\n].\n", ["rabbitmq_management", "rabbitmq_prometheus"],
                 id="over lines"),
    pytest.param(b"[rabbitmq_prometheus].", ["rabbitmq_prometheus"], id="bytes"),
])
def test_enabled_plugins(text, plugins):
    assert enabled(text) == plugins


def test_a_file_that_is_no_list_is_an_error():
    with pytest.raises(AnsibleFilterError, match="cannot read RabbitMQ's enabled_plugins file: not an Erlang list"):
        enabled("rabbitmq_management\n")
